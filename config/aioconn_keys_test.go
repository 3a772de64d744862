package config

import (
	"errors"
	"strings"
	"testing"
)

// TestAioconnKeys: metrics_listen and detailed_stats are known keys (no unknown-key warning),
// parsed and validated; absent or null means off.
func TestAioconnKeys(t *testing.T) {
	for _, c := range []struct {
		js       string
		listen   string
		detailed bool
		bad      bool
	}{
		{`{}`, "", false, false},
		{`{"metrics_listen": null}`, "", false, false},
		{`{"metrics_listen": ""}`, "", false, false},
		{`{"metrics_listen": "127.0.0.1:9464", "detailed_stats": true}`, "127.0.0.1:9464", true, false},
		{`{"metrics_listen": ":0"}`, ":0", false, false},
		{`{"metrics_listen": "[::1]:9464"}`, "[::1]:9464", false, false},
		{`{"metrics_listen": "127.0.0.1"}`, "", false, true},
		{`{"metrics_listen": "127.0.0.1:99999"}`, "", false, true},
		{`{"metrics_listen": 9464}`, "", false, true},
	} {
		o, err := Parse([]byte(c.js), "t.json")
		var ke *KeyError
		if c.bad {
			if !errors.As(err, &ke) || ke.Key != "metrics_listen" {
				t.Errorf("%s: error %v, want a metrics_listen KeyError", c.js, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.js, err)
			continue
		}
		if o.MetricsListen != c.listen || o.DetailedStats != c.detailed || len(o.Unknown) != 0 {
			t.Errorf("%s: listen %q detailed %v unknown %v", c.js, o.MetricsListen, o.DetailedStats, o.Unknown)
		}
		for _, w := range o.Warnings() {
			if strings.Contains(w, "metrics_listen") || strings.Contains(w, "detailed_stats") {
				t.Errorf("%s: warning %s", c.js, w)
			}
		}
	}
}

// TestLinkCompressionKey: link_compression is known, off by default, and names itself when wrong.
func TestLinkCompressionKey(t *testing.T) {
	for _, c := range []struct {
		js, want string
		bad      bool
	}{
		{`{}`, "", false},
		{`{"link_compression": null}`, "", false},
		{`{"link_compression": false}`, "", false},
		{`{"link_compression": "off"}`, "", false},
		{`{"link_compression": "s2"}`, "s2", false},
		{`{"link_compression": "zstd"}`, "zstd", false},
		{`{"link_compression": "gzip"}`, "", true},
		{`{"link_compression": true}`, "", true},
	} {
		o, err := Parse([]byte(c.js), "t.json")
		var ke *KeyError
		if c.bad {
			if !errors.As(err, &ke) || ke.Key != "link_compression" {
				t.Errorf("%s: error %v, want a link_compression KeyError", c.js, err)
			}
			continue
		}
		if err != nil || o.LinkCompression != c.want || len(o.Unknown) != 0 {
			t.Errorf("%s: %q %v unknown %v", c.js, o.LinkCompression, err, o.Unknown)
		}
	}
}
