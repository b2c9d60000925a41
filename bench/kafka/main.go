// Command kafka runs the embedded Kafka-protocol cluster (kfake) as its own
// process on a loopback port, so a benchmark can keep the broker's memory
// and CPU out of recsvc's process, as with a real cluster. It runs until
// interrupted or for -for.
//
//	go run ./bench/kafka -for 10m     # prints the broker address
//	go run ./bench/kafka -addr 127.0.0.1:29092   # a fixed address: stop it and
//	                                             # start it again to test a broker restart
//
// kfake keeps every record in memory; a real broker keeps them on disk and
// deletes them after its retention time. With -retain D the command
// emulates that retention: every D it deletes all records of every topic up
// to the high watermark (DeleteRecords), so a long soak measures recsvc and
// not a broker heap that grows by gigabytes.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/novarec/novarec/events"
)

func main() {
	addr := flag.String("addr", "", "listen address, host:port (empty = a random 127.0.0.1 port); a fixed one lets a restarted broker come back where clients look for it")
	partitions := flag.Int("partitions", 3, "partitions per topic")
	life := flag.Duration("for", 30*time.Minute, "stop after this long")
	retain := flag.Duration("retain", 0, "delete every topic's records this often (0 = keep everything)")
	flag.Parse()
	k, err := events.StartEmbeddedAt(*addr, *partitions)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		os.Exit(1)
	}
	defer k.Close()
	fmt.Println(k.Brokers()[0])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *life)
	defer cancel()
	if *retain > 0 {
		go truncate(ctx, k.Brokers(), *retain)
	}
	<-ctx.Done()
}

// truncate deletes all records of every topic every interval until ctx ends.
func truncate(ctx context.Context, brokers []string, interval time.Duration) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka: retention client:", err)
		return
	}
	defer cl.Close()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := deleteAll(ctx, cl); err != nil && ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "kafka: retention:", err)
		}
	}
}

// deleteAll truncates every partition of every topic to its high watermark.
func deleteAll(ctx context.Context, cl *kgo.Client) error {
	meta, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	req := kmsg.NewPtrDeleteRecordsRequest()
	req.TimeoutMillis = 5000
	for _, mt := range meta.Topics {
		if mt.Topic == nil {
			continue
		}
		rt := kmsg.NewDeleteRecordsRequestTopic()
		rt.Topic = *mt.Topic
		for _, mp := range mt.Partitions {
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Partition = mp.Partition
			rp.Offset = -1 // the high watermark
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
	}
	if len(req.Topics) == 0 {
		return nil
	}
	if _, err := req.RequestWith(ctx, cl); err != nil {
		return fmt.Errorf("delete records: %w", err)
	}
	return nil
}
