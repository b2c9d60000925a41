// Package movielens loads the MovieLens datasets so that they can be imported
// into the catalog and user histories and replayed offline.
//
// MovieLens is published by GroupLens Research (https://grouplens.org/datasets/movielens/);
// see F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets:
// History and Context. ACM Transactions on Interactive Intelligent Systems
// (TiiS) 5, 4, Article 19. The datasets are licensed for research use; their
// README files state the terms, which include acknowledging GroupLens.
//
// Three on-disk layouts are understood:
//
//   - CSV: ml-latest, ml-latest-small, ml-20m, ml-25m, ml-32m: movies.csv
//     (movieId,title,genres) and ratings.csv (userId,movieId,rating,timestamp),
//     each with a header row, RFC 4180 quoting and genres separated by '|'.
//   - DAT: ml-1m (and ml-10m): movies.dat (MovieID::Title::Genres) and
//     ratings.dat (UserID::MovieID::Rating::Timestamp).
//   - ML100K: ml-100k: u.item ('|'-separated, five leading fields then 19
//     genre flags) and u.data (tab-separated user, item, rating, timestamp).
//
// Genres become catalog.Item.Categories; an item's Popularity is its number of
// ratings in the dataset. Timestamps, in seconds in every MovieLens file, are
// converted to Unix milliseconds, the unit used throughout novarec.
package movielens

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/novarec/novarec/catalog"
)

// Format is the layout of a MovieLens file.
type Format int

// The MovieLens file layouts. The zero Format is invalid.
const (
	// CSV is the ml-latest / ml-20m / ml-25m layout: movies.csv, ratings.csv.
	CSV Format = iota + 1
	// DAT is the ml-1m layout: movies.dat, ratings.dat, "::"-separated.
	DAT
	// ML100K is the ml-100k layout: u.item, u.data.
	ML100K
)

func (f Format) String() string {
	switch f {
	case CSV:
		return "CSV"
	case DAT:
		return "DAT"
	case ML100K:
		return "ML100K"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// MoviesFile is the name of the format's movies file, as LoadDir looks for
// it; ReadMovies uses it to name the input in errors.
func (f Format) MoviesFile() string {
	switch f {
	case CSV:
		return "movies.csv"
	case DAT:
		return "movies.dat"
	case ML100K:
		return "u.item"
	}
	return "movies"
}

// RatingsFile is the name of the format's ratings file, as LoadDir looks for
// it; ReadRatings uses it to name the input in errors.
func (f Format) RatingsFile() string {
	switch f {
	case CSV:
		return "ratings.csv"
	case DAT:
		return "ratings.dat"
	case ML100K:
		return "u.data"
	}
	return "ratings"
}

// Rating is one rating event.
type Rating struct {
	UserID, ItemID string
	// Value is the rating (MovieLens: 0.5–5 stars; 1–5 in ml-100k and ml-1m).
	Value float64
	// TS is the event time in Unix milliseconds.
	TS int64
}

// Dataset is a loaded MovieLens dataset.
type Dataset struct {
	// Format is the layout the dataset was read from.
	Format Format
	// Items are the movies in file order, with Categories (genres) and
	// Popularity (number of ratings) set and Embedding left empty.
	Items []catalog.Item
	// Ratings are sorted by TS, then user, then item (ids compared as
	// numbers), keeping file order among equal keys; see SortRatings.
	Ratings []Rating
	// Titles maps item id to the movie title (UTF-8), for display.
	Titles map[string]string
}

// ParseError reports a malformed row: File is the file name (the path when
// read by LoadDir), Line the 1-based line number.
type ParseError struct {
	File string
	Line int
	Err  error
}

func (e *ParseError) Error() string {
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Err.Error()
}

func (e *ParseError) Unwrap() error { return e.Err }

// ErrNoDataset is returned by LoadDir when a directory holds none of the
// movies files it knows (movies.csv, movies.dat, u.item).
var ErrNoDataset = errors.New("movielens: no MovieLens dataset found")

// ReadMovies reads a movies file (movies.csv, movies.dat or u.item according
// to format) into catalog items, in file order, with ID (the movie id as a
// canonical decimal string) and Categories (the genres; none for
// "(no genres listed)" and the ml-100k "unknown" flag) set. Titles that are
// not valid UTF-8 (ml-1m, ml-100k) are decoded as Latin-1. Errors are
// *ParseError naming the line (e.g. "movies.csv:17: ...").
func ReadMovies(r io.Reader, format Format) ([]catalog.Item, error) {
	items, _, err := readMovies(r, format, format.MoviesFile(), false)
	return items, err
}

// ReadMoviesTitles is ReadMovies that also returns the titles, converted to
// UTF-8, by item id.
func ReadMoviesTitles(r io.Reader, format Format) ([]catalog.Item, map[string]string, error) {
	return readMovies(r, format, format.MoviesFile(), true)
}

// ReadRatings reads a ratings file (ratings.csv, ratings.dat or u.data
// according to format) in file order, with ids as canonical decimal strings
// and timestamps converted to Unix milliseconds. Errors are *ParseError
// naming the line (e.g. "ratings.csv:17: ...").
func ReadRatings(r io.Reader, format Format) ([]Rating, error) {
	return readRatings(r, format, format.RatingsFile())
}

func readMovies(r io.Reader, format Format, name string, titles bool) ([]catalog.Item, map[string]string, error) {
	p := newMovieParser(name, titles)
	var err error
	switch format {
	case CSV:
		err = p.readCSV(r)
	case DAT:
		err = p.readDAT(r)
	case ML100K:
		err = p.read100K(r)
	default:
		return nil, nil, fmt.Errorf("movielens: unknown format %v", format)
	}
	if err != nil {
		return nil, nil, err
	}
	return p.items, p.titles, nil
}

func readRatings(r io.Reader, format Format, name string) ([]Rating, error) {
	p := newRatingParser(name)
	// Size the slice from the file size when known: MovieLens rating lines
	// are 20–25 bytes.
	if st, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		if fi, err := st.Stat(); err == nil && fi.Mode().IsRegular() {
			p.ratings = make([]Rating, 0, fi.Size()/22+16)
		}
	}
	var err error
	switch format {
	case CSV:
		err = p.readCSV(r)
	case DAT:
		err = p.readSep(r, "::", "UserID::MovieID::Rating::Timestamp")
	case ML100K:
		err = p.readSep(r, "\t", "user id, item id, rating, timestamp separated by tabs")
	default:
		return nil, fmt.Errorf("movielens: unknown format %v", format)
	}
	if err != nil {
		return nil, err
	}
	return p.ratings, nil
}

// SortRatings sorts ratings by TS, then user, then item, comparing ids as
// numbers (canonical decimal ids, as the readers produce, compare by length
// and then bytes), keeping the input order among equal keys.
func SortRatings(rs []Rating) {
	// Sorting (time, index) keys, with the original index as the last key,
	// is stable and, unlike slices.SortStableFunc (in-place merging that
	// moves the 48-byte records O(n log² n) times), moves each record once;
	// most comparisons are settled by the time without touching the records.
	if len(rs) > math.MaxInt32 {
		slices.SortStableFunc(rs, compareRatings)
		return
	}
	type key struct {
		ts int64
		i  int32
	}
	keys := make([]key, len(rs))
	for i := range rs {
		keys[i] = key{rs[i].TS, int32(i)}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.ts != b.ts {
			return cmp.Compare(a.ts, b.ts)
		}
		if c := compareRatings(rs[a.i], rs[b.i]); c != 0 {
			return c
		}
		return cmp.Compare(a.i, b.i)
	})
	sorted := make([]Rating, len(rs))
	for i, k := range keys {
		sorted[i] = rs[k.i]
	}
	copy(rs, sorted)
}

func compareRatings(a, b Rating) int {
	if c := cmp.Compare(a.TS, b.TS); c != 0 {
		return c
	}
	if c := compareID(a.UserID, b.UserID); c != 0 {
		return c
	}
	return compareID(a.ItemID, b.ItemID)
}

func compareID(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// layouts lists the layouts LoadDir detects, in order of preference.
var layouts = []Format{CSV, DAT, ML100K}

// LoadDir loads the MovieLens dataset in dir, detecting its layout from the
// movies file present (movies.csv, then movies.dat, then u.item). The ratings
// file of the same layout is optional: without it the dataset has items only,
// all of popularity 0. Ratings of a movie the movies file does not list are
// an error.
func LoadDir(dir string) (*Dataset, error) {
	var format Format
	for _, f := range layouts {
		if st, err := os.Stat(filepath.Join(dir, f.MoviesFile())); err == nil && st.Mode().IsRegular() {
			format = f
			break
		}
	}
	if format == 0 {
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("movielens: %w", err)
		}
		return nil, fmt.Errorf("%w in %s (want movies.csv, movies.dat or u.item)", ErrNoDataset, dir)
	}

	moviesPath := filepath.Join(dir, format.MoviesFile())
	f, err := os.Open(moviesPath)
	if err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	items, titles, err := readMovies(f, format, moviesPath, true)
	f.Close()
	if err != nil {
		return nil, err
	}
	ds := &Dataset{Format: format, Items: items, Titles: titles}

	ratingsPath := filepath.Join(dir, format.RatingsFile())
	f, err = os.Open(ratingsPath)
	if errors.Is(err, fs.ErrNotExist) {
		return ds, nil
	}
	if err != nil {
		return nil, fmt.Errorf("movielens: %w", err)
	}
	ratings, err := readRatings(f, format, ratingsPath)
	f.Close()
	if err != nil {
		return nil, err
	}

	index := make(map[string]int, len(items))
	for i := range items {
		index[items[i].ID] = i
	}
	counts := make([]int, len(items))
	for _, r := range ratings {
		i, ok := index[r.ItemID]
		if !ok {
			return nil, fmt.Errorf("movielens: %s: user %s rated movie %s, which %s does not list",
				ratingsPath, r.UserID, r.ItemID, moviesPath)
		}
		counts[i]++
	}
	for i := range items {
		items[i].Popularity = float64(counts[i])
	}
	SortRatings(ratings)
	ds.Ratings = ratings
	return ds, nil
}
