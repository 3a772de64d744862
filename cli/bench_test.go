package cli

import (
	"bytes"
	"testing"
)

// TestProgressLine: on a terminal one line rewritten with \r and erased at the end; otherwise
// plain lines.
func TestProgressLine(t *testing.T) {
	var b bytes.Buffer
	p := &progressLine{w: &b, tty: true}
	p.show("a 1")
	p.show("a 2")
	p.end()
	p.end()
	if got, want := b.String(), "\ra 1\x1b[K\ra 2\x1b[K\r\x1b[K"; got != want {
		t.Errorf("tty: %q, want %q", got, want)
	}
	b.Reset()
	p = &progressLine{w: &b}
	p.show("a 1")
	p.show("a 2")
	p.end()
	p.show("late")
	if got, want := b.String(), "a 1\na 2\n"; got != want {
		t.Errorf("plain: %q, want %q", got, want)
	}
}
