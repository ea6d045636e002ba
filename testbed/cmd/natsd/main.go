// Command natsd runs a nats-server (the version in go.mod) with JetStream
// on 127.0.0.1:PORT, its store in DIR, until SIGTERM or SIGINT (then it
// shuts down cleanly; SIGKILL is a crash). Restarted on the same port and
// directory it serves the same streams again. testbed/events-bench.sh
// uses it as the external server of the outage measurement.
//
//	natsd -port 4333 -store /tmp/natsd
package main

import (
	"flag"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on")
	port := flag.Int("port", 4222, "client port")
	store := flag.String("store", "", "JetStream store directory (required)")
	sync := flag.Bool("sync", false, "fsync every JetStream write (sync_always)")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("natsd: ")
	if *store == "" {
		log.Fatal("-store is required")
	}
	s, err := server.NewServer(&server.Options{
		Host: *host, Port: *port, JetStream: true, StoreDir: *store, SyncAlways: *sync,
		NoSigs: true, NoLog: true, DisableJetStreamBanner: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		log.Fatal("not ready after 10 s")
	}
	log.Printf("nats-server %s ready on %s:%d, JetStream in %s", server.VERSION, *host, *port, *store)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
}
