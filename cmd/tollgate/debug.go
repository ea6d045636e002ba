package main

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"

	"github.com/rs/zerolog"

	"github.com/tollgate/tollgate/configs"
	"github.com/tollgate/tollgate/sip"
)

// startDebug serves the net/http/pprof handlers under /debug/pprof/ on
// addr (debug.listen): a listener of its own, never the admin API's.
func startDebug(addr string, log zerolog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, &sip.ListenError{Field: "debug.listen", Transport: "tcp", Address: addr, Err: err}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // also heap, goroutine, allocs, block, mutex, threadcreate
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	// No write timeout: a CPU profile or trace streams for ?seconds=N.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error().Err(err).Msg("profiling endpoint stopped")
		}
	}()
	log.Info().Str("listen", ln.Addr().String()).Msg("profiling (net/http/pprof) listening on /debug/pprof/")
	return srv, nil
}

// applyRuntime sets the garbage collector from the runtime section (unset
// fields leave Go's settings, e.g. $GOGC and $GOMEMLIMIT, alone) and
// returns the settings in effect: GOGC (-1: off) and the memory limit in
// bytes (math.MaxInt64: none).
func applyRuntime(r configs.Runtime) (gogc int, memoryLimit int64) {
	if n := r.MemoryLimitBytes(); n > 0 {
		debug.SetMemoryLimit(n)
	}
	if r.GOGC != nil {
		debug.SetGCPercent(*r.GOGC)
		gogc = *r.GOGC
	} else {
		gogc = debug.SetGCPercent(100) // read it: SetGCPercent returns the old value
		debug.SetGCPercent(gogc)
	}
	return gogc, debug.SetMemoryLimit(-1) // a negative limit reads it
}

// logRuntime logs the garbage collector settings in effect.
func logRuntime(log zerolog.Logger, gogc int, memoryLimit int64) {
	limit := "none"
	if memoryLimit != math.MaxInt64 {
		limit = fmt.Sprintf("%dMiB", memoryLimit>>20)
	}
	log.Info().Int("gogc", gogc).Str("memory_limit", limit).Msg("go runtime")
}
