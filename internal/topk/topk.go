// Package topk selects the best n elements of a slice without sorting it:
// quickselect, linear on average, where a sort of the thousands of scored
// items of a request or a co-occurrence row would dominate the cost.
package topk

// Select reorders s so that its first n elements are the n best under
// before (a strict order: before(a, b) when a ranks above b), in no
// particular order.
func Select[T any](s []T, n int, before func(a, b T) bool) {
	lo, hi := 0, len(s)-1
	if n <= 0 || n >= len(s) {
		return
	}
	for lo < hi {
		// Median-of-three pivot keeps sorted inputs linear.
		mid := lo + (hi-lo)/2
		if before(s[mid], s[lo]) {
			s[mid], s[lo] = s[lo], s[mid]
		}
		if before(s[hi], s[lo]) {
			s[hi], s[lo] = s[lo], s[hi]
		}
		if before(s[hi], s[mid]) {
			s[hi], s[mid] = s[mid], s[hi]
		}
		pivot := s[mid]
		i, j := lo, hi
		for i <= j {
			for before(s[i], pivot) {
				i++
			}
			for before(pivot, s[j]) {
				j--
			}
			if i <= j {
				s[i], s[j] = s[j], s[i]
				i++
				j--
			}
		}
		switch {
		case n-1 <= j:
			hi = j
		case n-1 >= i:
			lo = i
		default:
			return
		}
	}
}
