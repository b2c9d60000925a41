// Package apikey decides who may call which route of the service: API keys
// with scopes, read from a file that holds only the keys' SHA-256 hashes
// and is reloaded without a restart, and a token bucket per key and scope.
//
// A key file has one key per line, "ID SCOPES HASH", and # comments:
//
//	# id              scopes              SHA-256 of the whole key
//	frontend-2026-11  recommend,feedback  sha256:5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//
// The key a client presents is never stored: a leaked file or Secret does
// not let anyone call the service. Keys are long random strings, so a plain
// SHA-256 is enough (there is nothing to brute-force, unlike a password).
// Generate one as ID.RANDOM (see docs/security.md): the id in front names
// the key wherever it turns up, and makes two keys' hashes differ even if
// their random parts did not.
package apikey

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Scope is what a key may do. Each route needs exactly one scope; a key
// holds one or more. No scope implies another: an operator key that should
// also read intent state lists both admin and intent:read.
type Scope string

// The scopes, one per kind of client: a frontend recommends and sends
// feedback, a catalog pipeline writes (and reads back) items, support tools
// read a user's intent state, an operator runs experiments. Reading intent
// is its own scope because it exposes one user's behaviour, which a
// frontend that only shows slates does not need.
const (
	Recommend  Scope = "recommend"   // POST /v1/recommend
	Feedback   Scope = "feedback"    // POST /v1/feedback
	Catalog    Scope = "catalog"     // PUT /v1/items, GET /v1/items/{id}
	IntentRead Scope = "intent:read" // GET /v1/users/{id}/intent
	Admin      Scope = "admin"       // /v1/admin/*, GET /v1/experiments/{name}/report
)

// Scopes lists every scope.
var Scopes = []Scope{Recommend, Feedback, Catalog, IntentRead, Admin}

func (s Scope) valid() bool { return slices.Contains(Scopes, s) }

// Key ids that never name a key: they label requests in metrics and audit
// lines that no key was checked for.
const (
	// Anonymous is the key id of requests admitted without a key (open mode).
	Anonymous = "anonymous"
	// NoKey is the key id of requests refused for a missing or unknown key.
	NoKey = "none"
)

// Key is one API key as the service keeps it: its id, its scopes and the
// SHA-256 of the key.
type Key struct {
	ID     string
	Scopes []Scope
	Hash   [sha256.Size]byte
}

// Has reports whether the key holds scope s.
func (k *Key) Has(s Scope) bool { return slices.Contains(k.Scopes, s) }

// NewKey returns the Key of secret, the whole key a client presents.
func NewKey(id, secret string, scopes ...Scope) Key {
	return Key{ID: id, Scopes: scopes, Hash: sha256.Sum256([]byte(secret))}
}

// Line is the key's line in a keys file.
func (k *Key) Line() string {
	s := make([]string, len(k.Scopes))
	for i, sc := range k.Scopes {
		s[i] = string(sc)
	}
	return fmt.Sprintf("%s %s sha256:%x", k.ID, strings.Join(s, ","), k.Hash)
}

// Generate returns a new random key, ID.<64 hex digits> (256 bits), and
// its Key.
func Generate(id string, scopes ...Scope) (secret string, k Key) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	secret = id + "." + hex.EncodeToString(b[:])
	return secret, NewKey(id, secret, scopes...)
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// Parse reads a keys file. Errors name the line and the field but never
// echo a field's value, so that a key pasted by mistake where its hash
// belongs does not end up in a log.
func Parse(b []byte) ([]Key, error) {
	var keys []Key
	ids := map[string]int{}
	hashes := map[[sha256.Size]byte]int{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 3 {
			return nil, fmt.Errorf("line %d: want 3 fields (id scopes sha256:HASH), got %d", n, len(f))
		}
		k, err := parseLine(f[0], f[1], f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if prev, ok := ids[k.ID]; ok {
			return nil, fmt.Errorf("line %d: id %s is also on line %d", n, k.ID, prev)
		}
		if prev, ok := hashes[k.Hash]; ok {
			return nil, fmt.Errorf("line %d: the same key hash is also on line %d", n, prev)
		}
		ids[k.ID], hashes[k.Hash] = n, n
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

func parseLine(id, scopes, hash string) (Key, error) {
	k := Key{ID: id}
	if !idPattern.MatchString(id) || id == Anonymous || id == NoKey {
		return k, fmt.Errorf("id: want 1-64 letters, digits, _ or -, starting with a letter or digit, and not %q or %q", Anonymous, NoKey)
	}
	for _, s := range strings.Split(scopes, ",") {
		sc := Scope(s)
		if !sc.valid() {
			return k, errScope(id, s)
		}
		if !k.Has(sc) {
			k.Scopes = append(k.Scopes, sc)
		}
	}
	h, ok := strings.CutPrefix(hash, "sha256:")
	if !ok || len(h) != 2*sha256.Size {
		return k, errHashField(id)
	}
	if _, err := hex.Decode(k.Hash[:], []byte(h)); err != nil {
		return k, errHashField(id)
	}
	return k, nil
}

// errHashField does not say what the field held: it may be the key.
func errHashField(id string) error {
	return fmt.Errorf("key %s: the third field must be sha256: and 64 hex digits, the SHA-256 of the key (never the key itself)", id)
}

// scopeLike is what a mistyped scope looks like; anything else in the
// scopes field is not echoed in an error, as it may be a key.
var scopeLike = regexp.MustCompile(`^[a-z:]{1,24}$`)

func errScope(id, s string) error {
	if scopeLike.MatchString(s) {
		return fmt.Errorf("key %s: unknown scope %q (want one of %v)", id, s, Scopes)
	}
	return fmt.Errorf("key %s: the second field must be scopes, comma-separated, from %v", id, Scopes)
}
