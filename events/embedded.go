package events

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedTopics are the topics an embedded cluster is seeded with: the three
// event topics of DESIGN.md §5, model-updates and the catalog.
var EmbeddedTopics = []string{TopicImpressions, TopicFeedback, TopicDeadLetter, TopicModelUpdates, TopicCatalog}

// Embedded is an in-process, single-broker Kafka-protocol cluster (kfake)
// listening on a random 127.0.0.1 port. It exists so that recsvc's
// one-command embedded mode and the tests run the real Kafka client code over
// real TCP without installing a broker. It keeps everything in memory and is
// for trying things out only, never for production data.
//
// Goroutines: the cluster's accept loop, request loop and per-connection
// readers and writers belong to the Embedded; Close stops them all.
type Embedded struct {
	cluster *kfake.Cluster
	brokers []string
	once    sync.Once
}

// StartEmbedded starts an embedded cluster whose EmbeddedTopics have the given
// number of partitions each (at least 1). Other topics are created on first
// use with the same partition count, so a new topic needs no extra set-up in
// embedded mode. Call Close to stop it.
func StartEmbedded(partitions int) (*Embedded, error) {
	return StartEmbeddedAt("", partitions)
}

// StartEmbeddedAt is StartEmbedded listening on addr (host:port; "" = a
// random 127.0.0.1 port), so that a broker can be stopped and started again
// at the same address (bench/kafka -addr). Clients are told to connect to
// addr as given, so its host must be one they can reach.
func StartEmbeddedAt(addr string, partitions int) (*Embedded, error) {
	if partitions < 1 {
		return nil, fmt.Errorf("events: embedded cluster needs at least 1 partition, got %d", partitions)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.SeedTopics(int32(partitions), EmbeddedTopics...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(partitions),
	}
	if addr != "" {
		_, port, err := net.SplitHostPort(addr)
		p, perr := strconv.Atoi(port)
		if err != nil || perr != nil || p <= 0 {
			return nil, fmt.Errorf("events: embedded cluster address %q: want host:port with a port", addr)
		}
		opts = append(opts, kfake.Ports(p), kfake.ListenFn(func(network, _ string) (net.Listener, error) {
			return net.Listen(network, addr)
		}))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("events: start embedded kafka: %w", err)
	}
	brokers := c.ListenAddrs()
	if len(brokers) == 0 {
		c.Close()
		return nil, errors.New("events: embedded kafka has no listener")
	}
	return &Embedded{cluster: c, brokers: brokers}, nil
}

// Brokers returns the bootstrap addresses (host:port) of the cluster, for
// NewProducer, ConsumerOptions.Brokers and EnsureTopics.
func (e *Embedded) Brokers() []string { return append([]string(nil), e.brokers...) }

// Close stops the cluster: listeners and open client connections are closed
// and all data is discarded. It is safe to call more than once.
func (e *Embedded) Close() {
	e.once.Do(e.cluster.Close)
}
