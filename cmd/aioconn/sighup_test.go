package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSIGHUPReload: a running create_connector re-reads its config file on SIGHUP: the new log
// level and metrics_listen are applied (the /metrics server starts), a key that needs a restart
// is named in the log, the process keeps running; `aioconn cli show_stats` answers JSON.
func TestSIGHUPReload(t *testing.T) {
	needBinary(t)
	dir := shortDir(t)
	port := freePort(t)
	conf := serverConfig(dir, port, false)
	path, cfg := writeConfig(t, dir, "server.json", conf)
	p := paths(t, cfg)
	srv := start(t, "create_connector", path)
	waitTCP(t, port, srv)

	out, errOut, code := run(t, "cli", "show_stats", "--config", path)
	var st map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st["drops"] == nil {
		t.Fatalf("cli show_stats: code %d, stdout %q, stderr %q", code, out, errOut)
	}
	if lv, err := commandOnce(p.Commander, "show_log_level__sync"); err != nil || lv != "INFO" {
		t.Fatalf("log level before reload %q, %v", lv, err)
	}

	conf["default_logger_log_level"] = "DEBUG"
	conf["metrics_listen"] = "127.0.0.1:0"
	conf["max_size_file_upload"] = 1000
	writeConfig(t, dir, "server.json", conf)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	poll(t, 5*time.Second, "log level DEBUG after SIGHUP", func() (bool, string) {
		lv, err := commandOnce(p.Commander, "show_log_level__sync")
		return err == nil && lv == "DEBUG", lv
	})
	re := regexp.MustCompile(`serving metrics on (http://[0-9.:]+/metrics)`)
	var url string
	poll(t, 5*time.Second, "metrics server started", func() (bool, string) {
		m := re.FindStringSubmatch(srv.stdout.String())
		if m != nil {
			url = m[1]
		}
		return m != nil, ""
	})
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `aioconn_info{role="server"`) || !strings.Contains(string(body), "aioconn_dropped_messages_total") {
		t.Fatalf("/metrics lacks aioconn metrics:\n%.2000s", body)
	}
	poll(t, 5*time.Second, "restart key logged", func() (bool, string) {
		return strings.Contains(srv.stdout.String(), "max_size_file_upload changed, needs a restart"), ""
	})
	if srv.exited() {
		t.Fatalf("connector exited on SIGHUP; stderr:\n%s", srv.stderr)
	}
	srv.cmd.Process.Signal(syscall.SIGTERM)
	if code := srv.wait(t); code != 0 {
		t.Fatalf("exit code %d after SIGTERM; stderr:\n%s", code, srv.stderr)
	}
}
