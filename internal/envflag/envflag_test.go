package envflag

import (
	"slices"
	"testing"
	"time"
)

func TestEnvflag(t *testing.T) {
	t.Setenv("ENVFLAG_S", "x")
	t.Setenv("ENVFLAG_I", "7")
	t.Setenv("ENVFLAG_BAD", "seven")
	if String("ENVFLAG_S", "d") != "x" || String("ENVFLAG_UNSET", "d") != "d" {
		t.Error("String")
	}
	if Int("ENVFLAG_I", 1) != 7 || Int("ENVFLAG_BAD", 1) != 1 || Int("ENVFLAG_UNSET", 1) != 1 {
		t.Error("Int")
	}
	t.Setenv("ENVFLAG_F", "0.25")
	if Float("ENVFLAG_F", 1) != 0.25 || Float("ENVFLAG_BAD", 1) != 1 || Float("ENVFLAG_UNSET", 1) != 1 {
		t.Error("Float")
	}
	t.Setenv("ENVFLAG_B", "true")
	if !Bool("ENVFLAG_B", false) || Bool("ENVFLAG_BAD", false) || !Bool("ENVFLAG_UNSET", true) {
		t.Error("Bool")
	}
	t.Setenv("ENVFLAG_D", "150ms")
	if Duration("ENVFLAG_D", time.Second) != 150*time.Millisecond || Duration("ENVFLAG_BAD", time.Second) != time.Second || Duration("ENVFLAG_UNSET", time.Second) != time.Second {
		t.Error("Duration")
	}
	for _, tc := range []struct {
		in   string
		want []string
	}{{"", nil}, {"a", []string{"a"}}, {" a, b,,c ", []string{"a", "b", "c"}}} {
		if got := List(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
