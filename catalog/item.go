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
	"strings"
)

// DefaultDim is the embedding dimension used when a catalog is built from
// metadata alone.
const DefaultDim = 32

// Limits that keep one bad item from costing memory or CPU out of proportion.
const (
	MaxIDLen         = 128
	MaxCategories    = 32
	MaxCategoryLen   = 64
	MaxEmbeddingDims = 1024
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

// Validate checks the item against the catalog's limits. dim is the catalog's
// embedding dimension; a non-empty embedding must have exactly that length.
func (it *Item) Validate(dim int) error {
	switch {
	case it.ID == "":
		return &FieldError{"id", "is required"}
	case len(it.ID) > MaxIDLen:
		return &FieldError{"id", fmt.Sprintf("longer than %d bytes", MaxIDLen)}
	case strings.ContainsAny(it.ID, "\x00\n\r"):
		return &FieldError{"id", "contains control characters"}
	case len(it.Categories) > MaxCategories:
		return &FieldError{"categories", fmt.Sprintf("more than %d categories", MaxCategories)}
	case len(it.Embedding) != 0 && len(it.Embedding) != dim:
		return &FieldError{"embedding", fmt.Sprintf("has %d dimensions, want %d", len(it.Embedding), dim)}
	case math.IsNaN(it.Popularity) || math.IsInf(it.Popularity, 0) || it.Popularity < 0:
		return &FieldError{"popularity", "must be a finite number >= 0"}
	}
	for _, c := range it.Categories {
		if c == "" || len(c) > MaxCategoryLen {
			return &FieldError{"categories", fmt.Sprintf("each category must be 1..%d bytes", MaxCategoryLen)}
		}
	}
	for _, x := range it.Embedding {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return &FieldError{"embedding", "must hold finite numbers"}
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
