package benchmarks

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteJSON writes res as indented JSON.
func WriteJSON(w io.Writer, res *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}

// Params is a one-line summary of the options that matter for res's mode.
func (r *Result) Params() string {
	o := r.Options
	var s string
	switch o.Mode {
	case ModeRate:
		s = fmt.Sprintf("%d clients × %g msg/s for %v", o.Clients, o.Rate, o.Duration)
		if o.Warmup > 0 {
			s += fmt.Sprintf(" after a %v warm-up", o.Warmup)
		}
	case ModeThroughput:
		s = fmt.Sprintf("up to %d messages or %v, window %d", o.Count, o.Duration, o.Window)
	case ModePubsub:
		s = fmt.Sprintf("1 publisher → %d subscribers, up to %d messages or %v, window %d", o.Subscribers, o.Count, o.Duration, o.Window)
	case ModeReqrep:
		s = fmt.Sprintf("up to %d requests or %v per phase, concurrency %d", o.Count, o.Duration, o.Concurrency)
	case ModeFile:
		s = fmt.Sprintf("file of %d bytes", o.FileSize)
		if o.FileChunk > 0 && o.FileSize > o.FileChunk {
			s += fmt.Sprintf(" in chunks of %d", o.FileChunk)
		}
	case ModePersist:
		s = fmt.Sprintf("%d messages spilled to an absent client, then replayed", min(o.Count, persistMax))
	case ModeCertStorm:
		s = fmt.Sprintf("%d first-time clients at once (at nice %d), 1 established client at %g msg/s", o.Clients, o.StormNice, o.StormRate)
	}
	tls := ""
	if o.TLS != TLSOff {
		tls = ", TLS " + o.TLS
	}
	if o.Config != "" {
		tls += ", server from " + o.Config
	}
	if o.Path != PathSocket {
		tls += ", path " + o.Path
	}
	return fmt.Sprintf("mode %s, target %s%s, %s, %d-byte data", o.Mode, o.Target, tls, s, o.Size)
}

// WriteTable writes res as a human table.
func WriteTable(w io.Writer, res *Result) {
	m := res.Machine
	fmt.Fprintf(w, "aioconn bench: %s\nmachine: %s, %d CPU (%s), %s, %s\n\n", res.Params(), m.OS, m.NumCPU, m.CPUModel, m.GoVersion,
		res.Start.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "phase\tsent\tdelivered\tlost\tdup\treord\telapsed s\tsent/s\tdelivered/s\tMB/s\tp50 µs\tp90 µs\tp99 µs\tp99.9 µs\tmax µs\tconn CPU µs/msg\tbench CPU µs/msg\t")
	for _, p := range res.Phases {
		l := p.Latency
		if l == nil {
			l = &Latency{}
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.2f\t%.2f\t\n",
			p.Name, p.Sent, p.Delivered, p.Lost, p.Duplicated, p.Reordered, p.Elapsed, p.SendRate, p.Rate, p.MBps,
			l.P50, l.P90, l.P99, l.P999, l.Max, p.CPUPerMsgUs, p.BenchCPUUs)
	}
	tw.Flush()
	for _, p := range res.Phases {
		if len(p.Subscribers) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s per subscriber:\n", p.Name)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "subscriber\tdelivered\tlost\tdup\tdelivered/s\t")
		for _, s := range p.Subscribers {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.0f\t\n", s.Name, s.Delivered, s.Lost, s.Duplicated, s.Rate)
		}
		tw.Flush()
	}
	for _, p := range res.Phases {
		if len(p.P99BySecondMs) > 0 {
			fmt.Fprintf(w, "\n%s: p99 of each second of arrivals, ms:", p.Name)
			for _, v := range p.P99BySecondMs {
				fmt.Fprintf(w, " %.2f", v)
			}
			fmt.Fprintln(w)
		}
		if f := p.File; f != nil {
			fmt.Fprintf(w, "\nfile: %d bytes in %d message(s): %.3f s, %.1f MB/s, verified %v (sha256 %s)%s\n",
				f.Bytes, f.Chunks, f.Seconds, f.MBps, f.Verified, f.SHA256, map[bool]string{true: " " + f.Note, false: ""}[f.Note != ""])
		}
		if s := p.Storm; s != nil {
			fmt.Fprintf(w, "\ncertstorm: %d clients: %d certificates issued (median %.2f s, last %.2f s), %d connected, all served in %.2f s (0 = not within %.0f s); launch took %.2f s; %d exited or failed\n",
				s.Clients, s.Issued, s.IssuedP50S, s.IssuedMaxS, s.Connected, s.AllServedS, s.BoundS, s.LaunchS, s.StartFailed)
			if len(s.P99BySecondMs) > 0 {
				fmt.Fprint(w, "certstorm: established client's p99 per second of the storm, ms:")
				for _, v := range s.P99BySecondMs {
					fmt.Fprintf(w, " %.1f", v)
				}
				fmt.Fprintln(w)
			}
		}
	}
	if len(res.Procs) > 0 {
		fmt.Fprintln(w, "\nconnector processes (CPU during the measured phases; peak RSS = VmHWM):")
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "role\tprocesses\tCPU s\tpeak RSS MB (max)\tpeak RSS MB (sum)\trun-queue wait ms\tslices\twait µs/slice\t")
		for _, p := range res.Procs {
			per := 0.0
			if p.Slices > 0 {
				per = p.RunqWaitMs * 1000 / float64(p.Slices)
			}
			fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.1f\t%.1f\t%.1f\t%d\t%.1f\t\n", p.Role, p.Count, p.CPUSeconds, p.PeakRSSMBMax, p.PeakRSSMBTotal,
				p.RunqWaitMs, p.Slices, per)
		}
		tw.Flush()
	}
	for _, ph := range res.Phases {
		if ph.Malformed > 0 {
			fmt.Fprintf(w, "warning: %s: %d arrivals were not the bench's payload (malformed)\n", ph.Name, ph.Malformed)
		}
	}
	for _, n := range res.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}
