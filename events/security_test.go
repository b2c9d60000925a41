package events_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/novarec/novarec/events"
)

func TestNewSASL(t *testing.T) {
	for _, tc := range []struct {
		mech, user string
		wantName   string // "" = nil mechanism
		wantErr    string
	}{
		{mech: "", user: "", wantName: ""},
		{mech: "plain", user: "u", wantName: "PLAIN"},
		{mech: " SCRAM-SHA-256", user: "u", wantName: "SCRAM-SHA-256"},
		{mech: "scram-sha-512", user: "u", wantName: "SCRAM-SHA-512"},
		{mech: "PLAIN", user: "", wantErr: "needs a username"},
		{mech: "GSSAPI", user: "u", wantErr: "unknown SASL mechanism"},
	} {
		m, err := events.NewSASL(tc.mech, tc.user, "pw")
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NewSASL(%q, %q): err %v, want %q", tc.mech, tc.user, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("NewSASL(%q): %v", tc.mech, err)
		case tc.wantName == "" && m != nil:
			t.Errorf("NewSASL(%q) = %v, want nil", tc.mech, m)
		case tc.wantName != "" && (m == nil || m.Name() != tc.wantName):
			t.Errorf("NewSASL(%q) = %v, want %s", tc.mech, m, tc.wantName)
		}
	}
}

// TestSASL runs the real clients (EnsureTopics' Dialer, the producer's
// Transport, a consumer group's Dialer) against a cluster that requires SASL:
// with the right credentials of each mechanism they create a topic, write
// and read back an event; with a wrong password or none they fail, and the
// error says authentication failed rather than timing out anonymously.
func TestSASL(t *testing.T) {
	users := map[string][2]string{
		events.SASLPlain:       {"plain-user", "plain-secret"},
		events.SASLScramSHA256: {"scram256-user", "scram256-secret"},
		events.SASLScramSHA512: {"scram512-user", "scram512-secret"},
	}
	opts := []kfake.Opt{kfake.NumBrokers(1), kfake.EnableSASL()}
	for mech, up := range users {
		opts = append(opts, kfake.Superuser(mech, up[0], up[1]))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()

	for _, tc := range []struct {
		name, mech, user, pass string
		ok                     bool
	}{
		{"plain", events.SASLPlain, users[events.SASLPlain][0], users[events.SASLPlain][1], true},
		{"scram-256", events.SASLScramSHA256, users[events.SASLScramSHA256][0], users[events.SASLScramSHA256][1], true},
		{"scram-512", events.SASLScramSHA512, users[events.SASLScramSHA512][0], users[events.SASLScramSHA512][1], true},
		{"plain wrong password", events.SASLPlain, users[events.SASLPlain][0], "wrong", false},
		{"scram-256 wrong password", events.SASLScramSHA256, users[events.SASLScramSHA256][0], "wrong", false},
		{"scram-512 unknown user", events.SASLScramSHA512, "nobody", "x", false},
		// The mechanism has to match the user's: a SCRAM user cannot log in
		// with PLAIN.
		{"wrong mechanism", events.SASLPlain, users[events.SASLScramSHA256][0], users[events.SASLScramSHA256][1], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mech, err := events.NewSASL(tc.mech, tc.user, tc.pass)
			if err != nil {
				t.Fatal(err)
			}
			sec := events.Security{SASL: mech}
			topic := "rec.sasl." + strings.ReplaceAll(tc.name, " ", "-")
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			err = events.EnsureTopics(ctx, brokers, sec, 1, 1, topic)
			if !tc.ok {
				if !errors.Is(err, kafka.SASLAuthenticationFailed) || !events.IsAuthFailure(err) {
					t.Errorf("EnsureTopics with bad credentials: err = %v, want SASLAuthenticationFailed", err)
				}
				// A real broker answers SASLAuthenticationFailed before it
				// closes the connection; kfake only closes it, which
				// kafka-go's Transport reports as an unexpected EOF, so
				// the producer names the likely cause itself.
				p := newProducer(t, brokers, events.ProducerOptions{Security: sec})
				err := p.Produce(ctx, events.TopicFeedback, "u", []byte("x"))
				if err == nil || !(errors.Is(err, kafka.SASLAuthenticationFailed) || strings.Contains(err.Error(), "refused the credentials")) {
					t.Errorf("Produce with bad credentials: err = %v, want an authentication failure", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("EnsureTopics: %v", err)
			}
			p := newProducer(t, brokers, events.ProducerOptions{Security: sec})
			if err := p.Produce(ctx, topic, "user-1", []byte(`hello `+tc.name)); err != nil {
				t.Fatalf("Produce: %v", err)
			}
			cons := newConsumer(t, events.ConsumerOptions{Brokers: brokers, GroupID: "g-" + topic, Topics: []string{topic}, Security: sec})
			got := make(chan string, 1)
			rctx, stop := context.WithCancel(ctx)
			defer stop()
			runErr := make(chan error, 1)
			go func() {
				runErr <- cons.Run(rctx, func(_ context.Context, m kafka.Message) error {
					select {
					case got <- string(m.Value):
					default:
					}
					return nil
				})
			}()
			select {
			case v := <-got:
				if v != "hello "+tc.name {
					t.Errorf("consumed %q", v)
				}
			case <-ctx.Done():
				t.Fatal("nothing consumed")
			}
			stop()
			if err := <-runErr; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}

	// A client without SASL is not served at all.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := events.EnsureTopics(ctx, brokers, events.Security{}, 1, 1, "rec.nosasl"); err == nil {
		t.Error("EnsureTopics without SASL succeeded against a SASL-only cluster")
	}
}
