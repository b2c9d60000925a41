package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// movieLens is what the clicker takes from MovieLens' CSV files (the
// ml-latest-small layout): each movie's genres and, per rater, how many of
// their liked movies (rated 4 or more) fall in each genre.
type movieLens struct {
	genres map[string][]string
	liked  map[int]map[string]int
	raters []int
	all    []string
}

// loadMovieLens reads movies.csv and ratings.csv from dir. A missing file
// is reported as os.ErrNotExist, so the caller can go on without them.
func loadMovieLens(dir string) (*movieLens, error) {
	ml := &movieLens{genres: map[string][]string{}, liked: map[int]map[string]int{}}
	seen := map[string]bool{}
	err := readCSV(filepath.Join(dir, "movies.csv"), func(rec []string) error {
		if len(rec) < 3 {
			return fmt.Errorf("want movieId,title,genres, got %q", rec)
		}
		var gs []string
		for _, g := range strings.Split(rec[2], "|") {
			if g != "" && g != "(no genres listed)" {
				gs = append(gs, g)
				if !seen[g] {
					seen[g] = true
					ml.all = append(ml.all, g)
				}
			}
		}
		ml.genres[rec[0]] = gs
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = readCSV(filepath.Join(dir, "ratings.csv"), func(rec []string) error {
		if len(rec) < 3 {
			return fmt.Errorf("want userId,movieId,rating, got %q", rec)
		}
		user, err := strconv.Atoi(rec[0])
		if err != nil {
			return fmt.Errorf("userId %q: %w", rec[0], err)
		}
		rating, err := strconv.ParseFloat(rec[2], 64)
		if err != nil {
			return fmt.Errorf("rating %q: %w", rec[2], err)
		}
		if rating < 4 {
			return nil
		}
		counts := ml.liked[user]
		if counts == nil {
			counts = map[string]int{}
			ml.liked[user] = counts
			ml.raters = append(ml.raters, user)
		}
		for _, g := range ml.genres[rec[1]] {
			counts[g]++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(ml.raters) == 0 {
		return nil, fmt.Errorf("%s: no ratings of 4 or more", dir)
	}
	slices.Sort(ml.raters)
	return ml, nil
}

// tastes gives user i the genre tastes of a rater drawn from the seed: each
// genre's count among the rater's liked movies over the largest count.
func (ml *movieLens) tastes(seed uint64) func(i int) map[string]float64 {
	return func(i int) map[string]float64 {
		rng := rand.New(rand.NewPCG(seed, 2<<32|uint64(i)))
		counts := ml.liked[ml.raters[rng.IntN(len(ml.raters))]]
		top := 0
		for _, n := range counts {
			top = max(top, n)
		}
		t := make(map[string]float64, len(ml.all))
		for _, g := range ml.all {
			if top > 0 {
				t[g] = float64(counts[g]) / float64(top)
			}
		}
		return t
	}
}

// readCSV calls row for every record of the file after its header.
func readCSV(path string, row func([]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for line := 1; ; line++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if line == 1 {
			continue
		}
		if err := row(rec); err != nil {
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
	}
}
