// Package backend reads how recsvc and the trainer reach their two
// backends, Redis and Kafka, beyond the addresses: Sentinel, credentials,
// TLS, SASL and the settings of the topics they create. Both commands (and
// trainer ab-report) register the same flags with the same environment
// fallbacks from here, so a deployment configures them once for all.
//
// Passwords are never flags (a flag shows in ps and in the pod spec): they
// come from an environment variable, normally filled from a Kubernetes
// Secret, or from a file a flag names (a mounted Secret). No method of this
// package prints them.
package backend

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/novarec/novarec/events"
	"github.com/novarec/novarec/internal/envflag"
)

// Secret is a password. It prints, logs and marshals as "[redacted]", so
// that logging or dumping a configuration cannot leak it; string(s) is the
// value.
type Secret string

const redacted = "[redacted]"

func (Secret) String() string               { return redacted }
func (Secret) GoString() string             { return redacted }
func (Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// TLS is the client side of a TLS connection to one backend.
type TLS struct {
	// Enabled turns TLS on; the other fields need it.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the servers' certificates
	// (empty = the system roots), for private CAs.
	CAFile string
	// ServerName is the name to verify the servers' certificates against
	// (empty = the host of each address dialled).
	ServerName string
	// InsecureSkipVerify accepts any certificate: encryption without
	// authentication of the server, for tests only.
	InsecureSkipVerify bool
}

// tlsEnv names the environment variables of one backend's TLS flags,
// spelled out so that they can be found by name in the source.
type tlsEnv struct{ enabled, caFile, serverName, insecure string }

// register adds the TLS flags of one backend: flagPrefix names the flags
// ("redis" gives -redis-tls, ...), what names the servers in the help.
func (t *TLS) register(fs *flag.FlagSet, flagPrefix, what string, env tlsEnv) {
	fs.BoolVar(&t.Enabled, flagPrefix+"-tls", envflag.Bool(env.enabled, false),
		fmt.Sprintf("connect to %s over TLS (env %s)", what, env.enabled))
	fs.StringVar(&t.CAFile, flagPrefix+"-ca-file", envflag.String(env.caFile, ""),
		fmt.Sprintf("PEM file of the CAs that sign %s's certificates; empty = system roots (env %s)", what, env.caFile))
	fs.StringVar(&t.ServerName, flagPrefix+"-tls-server-name", envflag.String(env.serverName, ""),
		fmt.Sprintf("name to verify %s's certificates against; empty = the host dialled (env %s)", what, env.serverName))
	fs.BoolVar(&t.InsecureSkipVerify, flagPrefix+"-tls-insecure-skip-verify", envflag.Bool(env.insecure, false),
		fmt.Sprintf("accept any certificate from %s (tests only; env %s)", what, env.insecure))
}

// Config returns the tls.Config t describes, or nil when TLS is off. A CA
// file, server name or skip-verify without TLS is an error rather than
// silently plaintext.
func (t TLS) Config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify {
			return nil, errors.New("a CA file, server name or insecure-skip-verify is set but TLS is not enabled")
		}
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// password returns the secret from the environment variable's value env or
// from the file named by file, not both. A file's trailing newline (as
// `echo` and most editors leave it) is not part of the password.
func password(env Secret, envName, file, fileFlag string) (string, error) {
	switch {
	case file == "":
		return string(env), nil
	case env != "":
		return "", fmt.Errorf("%s and -%s are both set; use one", envName, fileFlag)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("-%s: %w", fileFlag, err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Redis is how the commands connect to Redis besides the addresses.
type Redis struct {
	// MasterName, when set, makes the addresses Sentinels and the client a
	// failover client that follows the master they name.
	MasterName string
	// Username is the ACL user (empty = the default user).
	Username string
	// Password is REDIS_PASSWORD, read by RedisFlags; PasswordFile names
	// a file holding it instead.
	Password     Secret
	PasswordFile string
	// SentinelPassword is REDIS_SENTINEL_PASSWORD, for Sentinels that
	// require a password of their own.
	SentinelPassword Secret
	TLS              TLS
}

// RedisFlags registers the Redis connection flags on fs and returns where
// they land once fs is parsed. Environment variables give the defaults;
// REDIS_PASSWORD and REDIS_SENTINEL_PASSWORD are read here.
func RedisFlags(fs *flag.FlagSet) *Redis {
	r := &Redis{Password: Secret(os.Getenv("REDIS_PASSWORD")), SentinelPassword: Secret(os.Getenv("REDIS_SENTINEL_PASSWORD"))}
	fs.StringVar(&r.MasterName, "redis-master", envflag.String("REDIS_MASTER_NAME", ""), "Sentinel master name: the Redis addresses are Sentinels and the client follows failovers (env REDIS_MASTER_NAME)")
	fs.StringVar(&r.Username, "redis-username", envflag.String("REDIS_USERNAME", ""), "Redis ACL user; the password comes from env REDIS_PASSWORD or -redis-password-file (env REDIS_USERNAME)")
	fs.StringVar(&r.PasswordFile, "redis-password-file", envflag.String("REDIS_PASSWORD_FILE", ""), "file holding the Redis password, instead of env REDIS_PASSWORD (env REDIS_PASSWORD_FILE)")
	r.TLS.register(fs, "redis", "Redis", tlsEnv{"REDIS_TLS", "REDIS_CA_FILE", "REDIS_TLS_SERVER_NAME", "REDIS_TLS_INSECURE_SKIP_VERIFY"})
	return r
}

// Options returns the client options for addrs: one address is a single
// node, several a Redis Cluster, and with MasterName they are Sentinels
// (redis.NewUniversalClient then builds a failover client). The caller adds
// its own pool and timeout settings. The zero Redis gives plain options.
//
// The result holds the password as a plain string: keep the Redis, not the
// options, in anything that may be printed.
func (r Redis) Options(addrs []string) (*redis.UniversalOptions, error) {
	pw, err := password(r.Password, "REDIS_PASSWORD", r.PasswordFile, "redis-password-file")
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	tc, err := r.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	if r.Username != "" && pw == "" {
		return nil, errors.New("redis: -redis-username is set but there is no password (REDIS_PASSWORD or -redis-password-file)")
	}
	return &redis.UniversalOptions{
		Addrs:            addrs,
		MasterName:       r.MasterName,
		Username:         r.Username,
		Password:         pw,
		SentinelPassword: string(r.SentinelPassword),
		TLSConfig:        tc,
	}, nil
}

// Warnings name settings that work but weaken security, for the log.
func (r Redis) Warnings() []string {
	if r.TLS.Enabled && r.TLS.InsecureSkipVerify {
		return []string{"redis: TLS certificate verification is off (-redis-tls-insecure-skip-verify)"}
	}
	return nil
}

// Kafka is how the commands connect to Kafka besides the brokers, and the
// settings of the topics they create when missing.
type Kafka struct {
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty = no
	// authentication).
	SASLMechanism string
	Username      string
	// Password is KAFKA_PASSWORD, read by KafkaFlags; PasswordFile names
	// a file holding it instead.
	Password     Secret
	PasswordFile string
	TLS          TLS
	// Partitions and Replication are those of the topics EnsureTopics
	// creates; existing topics are left as they are.
	Partitions, Replication int
}

// KafkaFlags registers the Kafka connection and topic flags on fs and returns
// where they land once fs is parsed. KAFKA_PASSWORD is read here.
func KafkaFlags(fs *flag.FlagSet) *Kafka {
	k := &Kafka{Password: Secret(os.Getenv("KAFKA_PASSWORD"))}
	fs.StringVar(&k.SASLMechanism, "kafka-sasl-mechanism", envflag.String("KAFKA_SASL_MECHANISM", ""), "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty = none (env KAFKA_SASL_MECHANISM)")
	fs.StringVar(&k.Username, "kafka-username", envflag.String("KAFKA_USERNAME", ""), "Kafka SASL user; the password comes from env KAFKA_PASSWORD or -kafka-password-file (env KAFKA_USERNAME)")
	fs.StringVar(&k.PasswordFile, "kafka-password-file", envflag.String("KAFKA_PASSWORD_FILE", ""), "file holding the Kafka SASL password, instead of env KAFKA_PASSWORD (env KAFKA_PASSWORD_FILE)")
	k.TLS.register(fs, "kafka", "the Kafka brokers", tlsEnv{"KAFKA_TLS", "KAFKA_CA_FILE", "KAFKA_TLS_SERVER_NAME", "KAFKA_TLS_INSECURE_SKIP_VERIFY"})
	// NOVAREC_PARTITIONS is the variable's earlier name, still honoured.
	fs.IntVar(&k.Partitions, "partitions", envflag.Int("KAFKA_TOPIC_PARTITIONS", envflag.Int("NOVAREC_PARTITIONS", 6)), "partitions per topic when creating missing topics (env KAFKA_TOPIC_PARTITIONS)")
	fs.IntVar(&k.Replication, "replication-factor", envflag.Int("KAFKA_REPLICATION_FACTOR", 1), "replication factor when creating missing topics, at most the number of brokers (env KAFKA_REPLICATION_FACTOR)")
	return k
}

// Topics returns the partitions and replication factor of the topics the
// commands create, checked.
func (k Kafka) Topics() (partitions, replication int, err error) {
	if k.Partitions < 1 || k.Replication < 1 {
		return 0, 0, fmt.Errorf("kafka: -partitions (%d) and -replication-factor (%d) must be at least 1", k.Partitions, k.Replication)
	}
	return k.Partitions, k.Replication, nil
}

// Security returns the events.Security for the producers, consumers and
// EnsureTopics. The zero Kafka gives the zero Security (plaintext).
//
// The result holds the password (inside the SASL mechanism) without
// redaction: keep the Kafka, not the Security, in anything that may be
// printed, and build the Security where the clients are made.
func (k Kafka) Security() (events.Security, error) {
	pw, err := password(k.Password, "KAFKA_PASSWORD", k.PasswordFile, "kafka-password-file")
	if err != nil {
		return events.Security{}, fmt.Errorf("kafka: %w", err)
	}
	if k.SASLMechanism == "" && (k.Username != "" || pw != "") {
		return events.Security{}, errors.New("kafka: a username or password is set but no SASL mechanism (-kafka-sasl-mechanism)")
	}
	mech, err := events.NewSASL(k.SASLMechanism, k.Username, pw)
	if err != nil {
		return events.Security{}, fmt.Errorf("kafka: %w", err)
	}
	tc, err := k.TLS.Config()
	if err != nil {
		return events.Security{}, fmt.Errorf("kafka: %w", err)
	}
	return events.Security{SASL: mech, TLS: tc}, nil
}

// Warnings name settings that work but weaken security, for the log.
func (k Kafka) Warnings() []string {
	var w []string
	if strings.EqualFold(strings.TrimSpace(k.SASLMechanism), events.SASLPlain) && !k.TLS.Enabled {
		w = append(w, "kafka: SASL PLAIN without TLS sends the password in clear text")
	}
	if k.TLS.Enabled && k.TLS.InsecureSkipVerify {
		w = append(w, "kafka: TLS certificate verification is off (-kafka-tls-insecure-skip-verify)")
	}
	return w
}

// Checked is what Check found valid in a command's connection settings.
type Checked struct {
	// Partitions and Replication are the topic settings.
	Partitions, Replication int
	// Warnings are the settings that work but deserve a log line.
	Warnings []string
}

// Check validates a command's Redis and Kafka settings together, so that
// a command fails at flag parsing, before anything starts.
func Check(r *Redis, k *Kafka, redisAddrs []string) (Checked, error) {
	if _, err := r.Options(redisAddrs); err != nil {
		return Checked{}, err
	}
	if _, err := k.Security(); err != nil {
		return Checked{}, err
	}
	p, rf, err := k.Topics()
	if err != nil {
		return Checked{}, err
	}
	return Checked{Partitions: p, Replication: rf, Warnings: append(r.Warnings(), k.Warnings()...)}, nil
}
