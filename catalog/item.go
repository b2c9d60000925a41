// Package catalog holds the item catalog as an immutable, in-memory snapshot
// indexed for the recommender's candidate generators: by id, by category, by
// popularity and by embedding cluster. It does no I/O; the features package
// persists items and builds snapshots from Redis.
package catalog

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"unicode/utf8"
)

// DefaultDim is the embedding dimension used when a catalog is built from
// metadata alone.
const DefaultDim = 32

// Limits that keep one bad item from costing memory or CPU out of proportion,
// or from dominating every slate. MaxPopularity is far above any count of
// views or sales, yet small enough that log1p of it (the popularity
// feature) and sums over a catalog stay finite and meaningful; embeddings
// are normalised before use, so components beyond MaxEmbeddingValue can
// only be mistakes.
const (
	MaxIDLen          = 128
	MaxCategories     = 32
	MaxCategoryLen    = 64
	MaxEmbeddingDims  = 1024
	MaxPopularity     = 1e12
	MaxEmbeddingValue = 1e6
)

// Item is one recommendable thing. Embedding is optional: items without one
// get an embedding derived from their categories (see Embed), so the service
// works from metadata alone.
type Item struct {
	ID         string    `json:"id"`
	Categories []string  `json:"categories"`
	Embedding  []float32 `json:"embedding,omitempty"`
	Popularity float64   `json:"popularity,omitempty"`
}

// FieldError names the offending field of an invalid item so that the HTTP
// layer can report it.
type FieldError struct {
	Field string
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// CheckID enforces novarec's one grammar for identifiers (item, user,
// session, request and event ids, and category names): 1 to max bytes of
// UTF-8 without control characters (U+0000–U+001F, U+007F–U+009F) and
// without U+FFFD. The last rule matters because encoding/json turns every
// invalid UTF-8 byte and every lone surrogate escape into U+FFFD: without
// it, distinct malformed ids would silently become one. Any other character
// is allowed, including '/', '?', '#' and '%'; the HTTP routes unescape path
// segments, so an id is read back by escaping it (url.PathEscape). The
// returned message reads after the field name ("is required").
func CheckID(s string, max int) (msg string, ok bool) {
	switch {
	case s == "":
		return "is required", false
	case len(s) > max:
		return fmt.Sprintf("is longer than %d bytes", max), false
	case !utf8.ValidString(s):
		return "is not valid UTF-8", false
	}
	for _, r := range s {
		switch {
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			return "contains control characters", false
		case r == utf8.RuneError:
			return "contains U+FFFD (invalid UTF-8 or a lone surrogate in the request)", false
		}
	}
	return "", true
}

// Validate checks the item against the catalog's limits. dim is the catalog's
// embedding dimension; a non-empty embedding must have exactly that length.
// Categories may be empty here (a MovieLens title without genres); the HTTP
// API requires at least one.
func (it *Item) Validate(dim int) error {
	if msg, ok := CheckID(it.ID, MaxIDLen); !ok {
		return &FieldError{"id", msg}
	}
	switch {
	case len(it.Categories) > MaxCategories:
		return &FieldError{"categories", fmt.Sprintf("more than %d categories", MaxCategories)}
	case len(it.Embedding) != 0 && len(it.Embedding) != dim:
		return &FieldError{"embedding", fmt.Sprintf("has %d dimensions, want %d", len(it.Embedding), dim)}
	case math.IsNaN(it.Popularity) || it.Popularity < 0 || it.Popularity > MaxPopularity:
		return &FieldError{"popularity", fmt.Sprintf("must be a number in [0, %g]", float64(MaxPopularity))}
	}
	for i, c := range it.Categories {
		if msg, ok := CheckID(c, MaxCategoryLen); !ok {
			return &FieldError{fmt.Sprintf("categories[%d]", i), msg}
		}
	}
	for i, x := range it.Embedding {
		if math.IsNaN(float64(x)) || math.Abs(float64(x)) > MaxEmbeddingValue {
			return &FieldError{fmt.Sprintf("embedding[%d]", i), fmt.Sprintf("must be a finite number in [-%g, %g]", float64(MaxEmbeddingValue), float64(MaxEmbeddingValue))}
		}
	}
	return nil
}

// ErrNoItems is returned when a snapshot would be built from nothing.
var ErrNoItems = errors.New("catalog: no items")

// Embed derives a unit embedding of dimension dim from an item's categories:
// the normalised sum of one fixed pseudo-random direction per category, plus a
// small item-specific component so items of the same categories are not
// identical. The directions are seeded by hashing names, so every process
// derives the same vectors without coordination.
func Embed(id string, categories []string, dim int) []float32 {
	v := make([]float64, dim)
	for _, c := range categories {
		addDirection(v, "cat:"+c, 1)
	}
	addDirection(v, "item:"+id, 0.35)
	out := make([]float32, dim)
	n := 0.0
	for _, x := range v {
		n += x * x
	}
	n = math.Sqrt(n)
	if n == 0 {
		n = 1
	}
	for i, x := range v {
		out[i] = float32(x / n)
	}
	return out
}

func addDirection(v []float64, name string, weight float64) {
	h := fnv.New64a()
	h.Write([]byte(name))
	rng := rand.New(rand.NewPCG(h.Sum64(), 0x9e3779b97f4a7c15))
	d := make([]float64, len(v))
	n := 0.0
	for i := range d {
		d[i] = rng.NormFloat64()
		n += d[i] * d[i]
	}
	n = math.Sqrt(n)
	for i := range v {
		v[i] += weight * d[i] / n
	}
}

// Normalize returns a unit-length copy of v (or a zero vector for a zero v).
func Normalize(v []float32) []float32 {
	out := make([]float32, len(v))
	var n float64
	for _, x := range v {
		n += float64(x) * float64(x)
	}
	if n == 0 {
		return out
	}
	inv := float32(1 / math.Sqrt(n))
	for i, x := range v {
		out[i] = x * inv
	}
	return out
}

// Hash is the 64-bit FNV-1a hash of an item id: stable across processes
// and versions, so per-user filters stored in Redis (recommend.Filter)
// keep meaning the same items.
func Hash(id string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(id); i++ {
		h ^= uint64(id[i])
		h *= 1099511628211
	}
	return h
}
