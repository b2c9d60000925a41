// Command kafka runs the embedded Kafka-protocol cluster (kfake) as its own
// process on a loopback port, so a benchmark can keep the broker's memory
// and CPU out of recsvc's process, as with a real cluster. It runs until
// interrupted or for -for.
//
//	go run ./bench/kafka -for 10m     # prints the broker address
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/novarec/novarec/events"
)

func main() {
	partitions := flag.Int("partitions", 3, "partitions per topic")
	life := flag.Duration("for", 30*time.Minute, "stop after this long")
	flag.Parse()
	k, err := events.StartEmbedded(*partitions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		os.Exit(1)
	}
	defer k.Close()
	fmt.Println(k.Brokers()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	select {
	case <-sig:
	case <-time.After(*life):
	}
}
