package catalog

import (
	"fmt"
	"strings"
	"testing"
)

// TestIndexFindsEveryIDAndNothingElse: ids short and long, sharing a
// prefix or differing only in length, are found (in the string Build packs
// them into); others are not.
func TestIndexFindsEveryIDAndNothingElse(t *testing.T) {
	long := strings.Repeat("x", 16)
	ids := []string{"a", "ab", "1", "12", "123456789012345", "1234567890123456", "12345678901234567",
		long, long + "a", long + "b", long + "ab", "é", "item-7", "m/1?#%"}
	for i := 0; i < 3000; i++ {
		ids = append(ids, fmt.Sprintf("item-%d", i), fmt.Sprintf("%s-%d", long, i))
	}
	var items []Item
	for _, id := range ids {
		items = append(items, Item{ID: id, Categories: []string{"c"}})
	}
	s, err := Build(1, 4, items)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		i, ok := s.Index(id)
		if !ok || s.Item(i).ID != id {
			t.Fatalf("Index(%q) = %d, %v", id, i, ok)
		}
	}
	absent := []string{"", "b", "abc", "1234567890123", "123456789012345678", long + "c", long + "abc",
		strings.Repeat("x", 15), "item-3000", "item-07", long + "-3000", "e"}
	for _, id := range absent {
		if i, ok := s.Index(id); ok {
			t.Fatalf("Index(%q) found item %d (%q)", id, i, s.Item(i).ID)
		}
	}
}

// BenchmarkIndex measures id lookups at 100k items, in random order.
func BenchmarkIndex(b *testing.B) {
	s, err := Build(1, 4, Sample(100000, 1))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 4096)
	for k := range ids {
		ids[k] = s.Item(int32((k * 7919) % s.Len())).ID
	}
	k := 0
	for b.Loop() {
		if _, ok := s.Index(ids[k%len(ids)]); !ok {
			b.Fatal("not found")
		}
		k++
	}
}
