package loop

import (
	"fmt"
	"os"
	"sync/atomic"

	"github.com/panjf2000/gnet/v2/pkg/logging"
)

// gnet's default logger writes INFO lines to stdout, which a connector's stdout must not carry
// (the original prints nothing there unless `silent` is false). Package loop installs a logger
// that drops gnet's debug/info/warn lines and hands errors to ErrorLog.

// ErrorLog receives gnet's error lines (default: stderr). Set it before Start; concurrency-safe.
var ErrorLog atomic.Pointer[func(string)]

type quietLogger struct{}

func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if f := ErrorLog.Load(); f != nil {
		(*f)(msg)
		return
	}
	fmt.Fprintln(os.Stderr, "loop: gnet:", msg)
}
func (l quietLogger) Fatalf(format string, args ...any) { l.Errorf(format, args...) }

func init() {
	logging.SetDefaultLoggerAndFlusher(quietLogger{}, func() error { return nil })
}
