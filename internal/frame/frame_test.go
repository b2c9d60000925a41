package frame

import (
	"errors"
	"testing"
)

func TestSealOpen(t *testing.T) {
	b := Seal("TEST", 3, []byte("payload"))
	p, err := Open("TEST", 3, b)
	if err != nil || string(p) != "payload" {
		t.Fatalf("round trip: %q %v", p, err)
	}
	flip := append([]byte(nil), b...)
	flip[18] ^= 1
	for _, tc := range []struct {
		name   string
		magic  string
		schema uint16
		data   []byte
		want   error
	}{
		{"other magic", "XXXX", 3, b, ErrCorrupt},
		{"other schema", "TEST", 4, b, ErrSchema},
		{"truncated", "TEST", 3, b[:len(b)-1], ErrCorrupt},
		{"flipped byte", "TEST", 3, flip, ErrCorrupt},
		{"empty", "TEST", 3, nil, ErrCorrupt},
	} {
		if _, err := Open(tc.magic, tc.schema, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}
