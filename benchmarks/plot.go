package benchmarks

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// ErrNoLatency: the run has no latency sample to plot.
var ErrNoLatency = errors.New("benchmarks: no latency samples to plot")

// plot geometry (SVG user units)
const (
	plotW, plotH   = 900, 380 // one panel
	plotL, plotR   = 80, 20   // margins
	plotT, plotB   = 30, 50
	plotTitleH     = 60
	plotMaxSamples = 1 << 22
)

var plotColors = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"}

// WritePlot draws the latency distribution of every phase of res that has samples, as an SVG
// written by hand: a histogram (logarithmic latency bins, share of messages per bin) and a
// percentile curve (latency against percentile on a "nines" axis: 0, 90, 99, 99.9, ...), with
// the run's parameters in the title. It returns ErrNoLatency when no phase has samples.
func WritePlot(w io.Writer, res *Result) error {
	type series struct {
		name string
		ns   []int64 // sorted
	}
	var ss []series
	for _, p := range res.Phases {
		if len(p.lat) > 0 {
			ss = append(ss, series{p.Name, p.lat})
		}
	}
	if len(ss) == 0 {
		return ErrNoLatency
	}
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		lo = math.Min(lo, float64(max(s.ns[0], 100))/1000)
		hi = math.Max(hi, float64(max(s.ns[len(s.ns)-1], 100))/1000)
	}
	// latency axis in µs, log10, whole decades
	l0, l1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if l1 <= l0 {
		l1 = l0 + 1
	}
	var b strings.Builder
	totalH := plotTitleH + 2*plotH
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotW, totalH, plotW, totalH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	m := res.Machine
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>`+"\n", plotL, esc("aioconn bench latency: "+res.Params()))
	fmt.Fprintf(&b, `<text x="%d" y="42" fill="#555">%s</text>`+"\n", plotL,
		esc(fmt.Sprintf("%d CPU (%s), %s, %s", m.NumCPU, m.CPUModel, m.GoVersion, res.Start.Format(time.RFC3339))))

	// panel 1: histogram
	y0 := float64(plotTitleH)
	x := func(us float64) float64 { // latency → x
		return plotL + (math.Max(math.Log10(us), l0)-l0)/(l1-l0)*float64(plotW-plotL-plotR)
	}
	const binsPerDecade = 10
	nb := int(l1-l0) * binsPerDecade
	hists := make([][]float64, len(ss))
	var peak float64
	for i, s := range ss {
		h := make([]float64, nb)
		step := max(1, len(s.ns)/plotMaxSamples)
		n := 0
		for k := 0; k < len(s.ns); k += step {
			us := math.Max(float64(s.ns[k])/1000, lo)
			bi := int((math.Log10(us) - l0) * binsPerDecade)
			h[max(0, min(bi, nb-1))]++
			n++
		}
		for k := range h {
			h[k] /= float64(n)
			peak = math.Max(peak, h[k])
		}
		hists[i] = h
	}
	peak = math.Max(peak, 1e-9)
	ph := float64(plotH - plotT - plotB)
	top := y0 + plotT
	bottom := top + ph
	axes(&b, top, bottom)
	for d := l0; d <= l1; d++ {
		xx := x(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", xx, top, xx, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", xx, bottom+16, usLabel(math.Pow(10, d)))
	}
	for k := 0; k <= 4; k++ {
		v := peak * float64(k) / 4
		yy := bottom - v/peak*ph
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%.1f%%</text>`+"\n", plotL-6, yy+4, v*100)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle">latency (log scale)</text>`+"\n", (plotW+plotL)/2, bottom+34)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">histogram: share of messages per bin (%d bins per decade)</text>`+"\n", plotL, top-8, binsPerDecade)
	bw := float64(plotW-plotL-plotR) / float64(nb)
	for i, h := range hists {
		c := plotColors[i%len(plotColors)]
		for k, v := range h {
			if v == 0 {
				continue
			}
			hh := v / peak * ph
			fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" fill-opacity="%.2f"/>`+"\n",
				plotL+float64(k)*bw+1, bottom-hh, bw-2, hh, c, 0.8/float64(len(hists))+0.2)
		}
	}
	legend(&b, ss2names(len(ss), func(i int) string { return ss[i].name }), top+4)

	// panel 2: percentile curve
	top = y0 + plotH + plotT
	bottom = top + ph
	axes(&b, top, bottom)
	maxNines := 1.0
	for _, s := range ss {
		maxNines = math.Max(maxNines, math.Floor(math.Log10(float64(len(s.ns)))))
	}
	maxNines = math.Min(maxNines, 6)
	px := func(nines float64) float64 { return plotL + nines/maxNines*float64(plotW-plotL-plotR) }
	py := func(us float64) float64 {
		return bottom - (math.Max(math.Log10(math.Max(us, 1e-3)), l0)-l0)/(l1-l0)*ph
	}
	for d := l0; d <= l1; d++ {
		yy := py(math.Pow(10, d))
		fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>`+"\n", plotL, yy, plotW-plotR, yy)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotL-6, yy+4, usLabel(math.Pow(10, d)))
	}
	for k := 0.0; k <= maxNines; k++ {
		xx := px(k)
		p := 100 * (1 - math.Pow(10, -k))
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", xx, top, xx, bottom)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">p%s</text>`+"\n", xx, bottom+16, trimFloat(p))
	}
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="middle">percentile</text>`+"\n", (plotW+plotL)/2, bottom+34)
	fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-weight="bold">percentile curve: latency at or below which that share of messages arrived</text>`+"\n", plotL, top-8)
	for i, s := range ss {
		var pts strings.Builder
		n := len(s.ns)
		const steps = 400
		for k := 0; k <= steps; k++ {
			nines := maxNines * float64(k) / steps
			q := 1 - math.Pow(10, -nines)
			idx := min(n-1, max(0, int(math.Ceil(q*float64(n)))-1))
			fmt.Fprintf(&pts, "%.1f,%.1f ", px(nines), py(float64(s.ns[idx])/1000))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", plotColors[i%len(plotColors)], strings.TrimSpace(pts.String()))
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" fill="%s">%s: max %s (%d samples)</text>`+"\n", plotL+8, top+16+float64(i)*16,
			plotColors[i%len(plotColors)], esc(s.name), usLabel(float64(s.ns[n-1])/1000), n)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func ss2names(n int, f func(int) string) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func axes(b *strings.Builder, top, bottom float64) {
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", plotL, bottom, plotW-plotR, bottom)
	fmt.Fprintf(b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="black"/>`+"\n", plotL, top, plotL, bottom)
}

func legend(b *strings.Builder, names []string, y float64) {
	for i, n := range names {
		c := plotColors[i%len(plotColors)]
		fmt.Fprintf(b, `<rect x="%d" y="%.1f" width="10" height="10" fill="%s"/><text x="%d" y="%.1f">%s</text>`+"\n",
			plotW-plotR-220, y+float64(i)*16, c, plotW-plotR-205, y+float64(i)*16+9, esc(n))
	}
}

// usLabel prints a latency in µs with a readable unit.
func usLabel(us float64) string {
	switch {
	case us >= 1e6:
		return trimFloat(us/1e6) + " s"
	case us >= 1e3:
		return trimFloat(us/1e3) + " ms"
	default:
		return trimFloat(us) + " µs"
	}
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.4f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}
