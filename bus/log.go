package bus

import (
	"fmt"
	"strings"
	"sync"

	"github.com/rs/zerolog"
)

// serverLog routes the embedded nats-server's log to zerolog: its
// notices at debug (they are chatty: banner, JetStream limits, each
// client), warnings at warn, errors and fatal errors at error. It never
// exits the process (nats-server's own logger does on Fatalf). The last
// error is kept for StartServer's error.
type serverLog struct {
	log zerolog.Logger

	mu      sync.Mutex
	lastErr string
}

func (l *serverLog) msg(format string, v []any) string {
	return strings.TrimSpace(fmt.Sprintf(format, v...))
}

func (l *serverLog) Noticef(format string, v ...any) { l.log.Debug().Msg(l.msg(format, v)) }
func (l *serverLog) Warnf(format string, v ...any)   { l.log.Warn().Msg(l.msg(format, v)) }
func (l *serverLog) Debugf(format string, v ...any)  { l.log.Trace().Msg(l.msg(format, v)) }
func (l *serverLog) Tracef(format string, v ...any)  { l.log.Trace().Msg(l.msg(format, v)) }

func (l *serverLog) Errorf(format string, v ...any) {
	m := l.msg(format, v)
	l.mu.Lock()
	l.lastErr = m
	l.mu.Unlock()
	l.log.Error().Msg(m)
}

func (l *serverLog) Fatalf(format string, v ...any) { l.Errorf(format, v...) }

func (l *serverLog) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}
