package connector

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Level is a Python logging level number (DEBUG 10 … CRITICAL 50).
type Level int32

// Python logging levels.
const (
	LevelDebug    Level = 10
	LevelInfo     Level = 20
	LevelWarning  Level = 30
	LevelError    Level = 40
	LevelCritical Level = 50
)

// ParseLevel maps a Python level name (case-sensitive, as logging does) to a Level.
func ParseLevel(name string) (Level, bool) {
	switch name {
	case "DEBUG":
		return LevelDebug, true
	case "INFO":
		return LevelInfo, true
	case "WARNING", "WARN":
		return LevelWarning, true
	case "ERROR":
		return LevelError, true
	case "CRITICAL", "FATAL":
		return LevelCritical, true
	case "NOTSET":
		return 0, true
	}
	return 0, false
}

// String is the name Python's logging.getLevelName gives.
func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "DEBUG"
	case LevelInfo:
		return "INFO"
	case LevelWarning:
		return "WARNING"
	case LevelError:
		return "ERROR"
	case LevelCritical:
		return "CRITICAL"
	case 0:
		return "NOTSET"
	}
	return "Level " + strconv.Itoa(int(l))
}

// Logger writes aioconnectors-format lines
// (`2021-01-04 10:20:30,123 - aioconnectors.server - INFO - message`, UTC) to aioconnectors.log with
// size rotation (5 numbered backups), and optionally to stdout. Concurrency-safe. Logging is off the
// hot path: per-message events are logged at DEBUG and skipped cheaply when the level is higher.
type Logger struct {
	name   string
	level  atomic.Int32
	mu     sync.Mutex
	f      *os.File
	path   string
	size   int64
	rotate int64 // 0: never
	stdout io.Writer
}

// NewLogger opens (appends to) dir/aioconnectors.log. rotateBytes 0 disables rotation. stdout may be nil.
func NewLogger(name, dir string, level Level, rotateBytes int64, stdout io.Writer) (*Logger, error) {
	l := &Logger{name: name, rotate: rotateBytes, stdout: stdout}
	l.level.Store(int32(level))
	if dir != "" {
		l.path = filepath.Join(dir, "aioconnectors.log")
		f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("connector: open log file: %w", err)
		}
		st, _ := f.Stat()
		if st != nil {
			l.size = st.Size()
		}
		l.f = f
	}
	return l, nil
}

// SetLevel changes the level; Level returns it.
func (l *Logger) SetLevel(lv Level) { l.level.Store(int32(lv)) }

// Level returns the current level.
func (l *Logger) Level() Level { return Level(l.level.Load()) }

// Enabled reports whether lv is logged.
func (l *Logger) Enabled(lv Level) bool { return l != nil && int32(lv) >= l.level.Load() }

func (l *Logger) Debugf(format string, a ...any) { l.logf(LevelDebug, format, a...) }
func (l *Logger) Infof(format string, a ...any)  { l.logf(LevelInfo, format, a...) }
func (l *Logger) Warnf(format string, a ...any)  { l.logf(LevelWarning, format, a...) }
func (l *Logger) Errorf(format string, a ...any) { l.logf(LevelError, format, a...) }

func (l *Logger) logf(lv Level, format string, a ...any) {
	if !l.Enabled(lv) {
		return
	}
	now := time.Now().UTC()
	line := fmt.Sprintf("%s,%03d - %s - %s - %s\n", now.Format("2006-01-02 15:04:05"), now.Nanosecond()/1e6, l.name, lv, fmt.Sprintf(format, a...))
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		if l.rotate > 0 && l.size+int64(len(line)) > l.rotate {
			l.rotateLocked()
		}
		n, _ := l.f.WriteString(line)
		l.size += int64(n)
	}
	if l.stdout != nil {
		io.WriteString(l.stdout, line)
	}
}

// rotateLocked renames aioconnectors.log.4 -> .5 … log -> .1 (Python RotatingFileHandler, 5 backups).
func (l *Logger) rotateLocked() {
	l.f.Close()
	for i := 4; i >= 1; i-- {
		os.Rename(l.path+"."+strconv.Itoa(i), l.path+"."+strconv.Itoa(i+1))
	}
	os.Rename(l.path, l.path+".1")
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		l.f = nil
		return
	}
	l.f = f
	l.size = 0
}

// Close closes the log file.
func (l *Logger) Close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
