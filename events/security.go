package events

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"
)

// SASL mechanisms NewSASL accepts, as Kafka names them (sasl.mechanism).
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Security says how the Kafka clients authenticate to the brokers and
// protect the connection. One value configures the consumer's Dialer, the
// producer's Transport and EnsureTopics alike, so that the three cannot
// disagree: a managed cluster that requires SASL over TLS would otherwise
// accept the producer and refuse the consumer group, or the other way round.
// The zero value is plaintext without authentication (the embedded cluster,
// a development broker).
type Security struct {
	// SASL authenticates every connection (nil = none); NewSASL builds one
	// from a mechanism name and credentials.
	SASL sasl.Mechanism
	// TLS encrypts every connection (nil = plaintext). Without ServerName,
	// kafka-go verifies each broker's certificate against the host name it
	// dials, which is what a multi-broker cluster needs.
	TLS *tls.Config
}

// NewSASL returns the SASL mechanism named mechanism (PLAIN, SCRAM-SHA-256
// or SCRAM-SHA-512, case-insensitive) with the given credentials, or nil
// when mechanism is empty. PLAIN sends the password as is and belongs only
// on TLS connections; SCRAM proves knowledge of it without sending it.
func NewSASL(mechanism, username, password string) (sasl.Mechanism, error) {
	m := strings.ToUpper(strings.TrimSpace(mechanism))
	if m == "" {
		return nil, nil
	}
	if username == "" {
		return nil, fmt.Errorf("events: SASL %s needs a username", m)
	}
	switch m {
	case SASLPlain:
		return plain.Mechanism{Username: username, Password: password}, nil
	case SASLScramSHA256, SASLScramSHA512:
		algo := scram.SHA256
		if m == SASLScramSHA512 {
			algo = scram.SHA512
		}
		mech, err := scram.Mechanism(algo, username, password)
		if err != nil {
			return nil, fmt.Errorf("events: SASL %s: %w", m, err)
		}
		return mech, nil
	}
	return nil, fmt.Errorf("events: unknown SASL mechanism %q (want %s, %s or %s)", mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
}

// dialer returns a Dialer (consumer groups, EnsureTopics) that connects
// with s within timeout (0 = kafka-go's default).
func (s Security) dialer(timeout time.Duration) *kafka.Dialer {
	return &kafka.Dialer{ClientID: "novarec", Timeout: timeout, SASLMechanism: s.SASL, TLS: s.TLS}
}

// explain adds the likely cause to a connection cut short while s has SASL
// configured. A broker answers bad credentials with SASLAuthenticationFailed
// and then closes the connection, but kafka-go's Transport (the producer)
// reports the close as a bare "unexpected EOF" when it reads it first,
// which sends an operator looking at the network instead of the secret.
func (s Security) explain(err error) error {
	if s.SASL == nil || !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return fmt.Errorf("%w (the broker closed the connection; with SASL %s configured this usually means it refused the credentials or the mechanism)", err, s.SASL.Name())
}

// IsAuthFailure reports whether err says that authentication failed either
// way: the brokers refused the client's SASL credentials or mechanism, or
// the client refused a broker's TLS certificate. Such an error does not go
// away by retrying, so the commands stop at start instead of running
// without their event log.
func IsAuthFailure(err error) bool {
	var cert *tls.CertificateVerificationError
	return errors.Is(err, kafka.SASLAuthenticationFailed) || errors.Is(err, kafka.UnsupportedSASLMechanism) ||
		errors.Is(err, kafka.IllegalSASLState) || errors.As(err, &cert)
}
