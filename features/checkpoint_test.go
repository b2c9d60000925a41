package features

import (
	"bytes"
	"errors"
	"testing"
)

func TestCheckpoints(t *testing.T) {
	t.Parallel()
	s, client := newStore(t, Options{})
	ctx := t.Context()
	if _, err := s.LoadCheckpoint(ctx, "trainer:default"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LoadCheckpoint before save: %v, want ErrNotFound", err)
	}
	first := []byte{0, 1, 2, 0xff, '\n', 0}
	if err := s.SaveCheckpoint(ctx, "trainer:default", first); err != nil {
		t.Fatal(err)
	}
	// A second save replaces the first entirely, even when shorter.
	second := bytes.Repeat([]byte{7}, 3)
	if err := s.SaveCheckpoint(ctx, "trainer:default", second); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadCheckpoint(ctx, "trainer:default")
	if err != nil || !bytes.Equal(got, second) {
		t.Errorf("LoadCheckpoint = %v, %v; want %v", got, err, second)
	}
	// The key is PREFIXtrainer:ckpt:NAME, so operators can find (and
	// delete) it.
	if raw, err := client.Get(ctx, s.prefix+"trainer:ckpt:trainer:default").Bytes(); err != nil || !bytes.Equal(raw, second) {
		t.Errorf("raw key = %v, %v", raw, err)
	}
	if _, err := s.LoadCheckpoint(ctx, "trainer:other"); !errors.Is(err, ErrNotFound) {
		t.Errorf("LoadCheckpoint(other): %v, want ErrNotFound", err)
	}
	// Large blobs (a model with 100k learned embeddings is ~15 MB) round-trip.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<20)
	if err := s.SaveCheckpoint(ctx, "big", big); err != nil {
		t.Fatal(err)
	}
	if got, err := s.LoadCheckpoint(ctx, "big"); err != nil || !bytes.Equal(got, big) {
		t.Errorf("big checkpoint: %d bytes, %v", len(got), err)
	}
	if err := s.SaveCheckpoint(ctx, "", first); err == nil {
		t.Error("SaveCheckpoint with empty name: want error")
	}
	if _, err := s.LoadCheckpoint(ctx, ""); err == nil {
		t.Error("LoadCheckpoint with empty name: want error")
	}
}
