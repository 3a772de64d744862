//go:build !race

package api

import (
	"context"
	"testing"
)

// The send hot path allocates nothing per message in preserve mode.
func TestSendMessageAllocs(t *testing.T) {
	cfg := serverCfg(t, shortDir(t), "")
	got := make(chan []byte, 1)
	listenFake(t, cfg.SendToConnectorPath(), recordAll(got))
	a := newAPI(t, cfg)
	ctx := context.Background()
	if err := a.SendMessage(ctx, benchOpts); err != nil {
		t.Fatal(err)
	}
	n := testing.AllocsPerRun(200, func() {
		if err := a.SendMessage(ctx, benchOpts); err != nil {
			t.Fatal(err)
		}
	})
	if n != 0 {
		t.Errorf("SendMessage: %v allocations per message, want 0", n)
	}
	a.Close()
	<-got
}
