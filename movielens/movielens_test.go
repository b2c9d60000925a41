package movielens

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/novarec/novarec/catalog"
)

// crlf turns "\n" line endings into "\r\n".
func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadDirLayouts(t *testing.T) {
	tests := []struct {
		name    string
		files   map[string]string
		format  Format
		items   []catalog.Item
		titles  map[string]string
		ratings []Rating
	}{
		{
			name:   "csv",
			format: CSV,
			files: map[string]string{
				"movies.csv": crlf("movieId,title,genres\n" +
					"1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy\n" +
					"29,\"City of Lost Children, The (Cité des enfants perdus, La) (1995)\",Adventure|Drama|Fantasy|Mystery|Sci-Fi\n" +
					"7789,\"11'09\"\"01 - September 11 (2002)\",Drama\n" +
					"182727,A Christmas Story Live! (2017),(no genres listed)\n" +
					"200,Unrated (2000),Comedy\n"),
				"ratings.csv": crlf("userId,movieId,rating,timestamp\n" +
					"10,1,4.0,964982703\n" +
					"9,29,3.5,964982703\n" +
					"9,1,5,964981247\n" +
					"10,7789,0.5,1537799250\n" +
					"9,29,2.0,964982703\n" + // same key as line 3: stays after it
					"10,182727,3,964982703\n"),
				"links.csv": "movieId,imdbId,tmdbId\n",
			},
			items: []catalog.Item{
				{ID: "1", Categories: []string{"Adventure", "Animation", "Children", "Comedy", "Fantasy"}, Popularity: 2},
				{ID: "29", Categories: []string{"Adventure", "Drama", "Fantasy", "Mystery", "Sci-Fi"}, Popularity: 2},
				{ID: "7789", Categories: []string{"Drama"}, Popularity: 1},
				{ID: "182727", Popularity: 1},
				{ID: "200", Categories: []string{"Comedy"}},
			},
			titles: map[string]string{
				"1":      "Toy Story (1995)",
				"29":     "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
				"7789":   `11'09"01 - September 11 (2002)`,
				"182727": "A Christmas Story Live! (2017)",
				"200":    "Unrated (2000)",
			},
			ratings: []Rating{
				{"9", "1", 5, 964981247000},
				{"9", "29", 3.5, 964982703000},
				{"9", "29", 2, 964982703000},
				{"10", "1", 4, 964982703000},
				{"10", "182727", 3, 964982703000},
				{"10", "7789", 0.5, 1537799250000},
			},
		},
		{
			name:   "csv items only, no final newline, columns reordered",
			format: CSV,
			files: map[string]string{
				"movies.csv": "title,genres,movieId\nHeat (1995),Action|Crime|Thriller,6\n\"Dead, Man\",Drama,7",
			},
			items: []catalog.Item{
				{ID: "6", Categories: []string{"Action", "Crime", "Thriller"}},
				{ID: "7", Categories: []string{"Drama"}},
			},
			titles: map[string]string{"6": "Heat (1995)", "7": "Dead, Man"},
		},
		{
			name:   "ml-1m dat, latin1",
			format: DAT,
			files: map[string]string{
				"movies.dat": crlf("1::Toy Story (1995)::Animation|Children's|Comedy\n" +
					"73::Mis\xe9rables, Les (1995)::Drama|Musical\n" +
					"3::Grumpier Old Men (1995)::Comedy|Romance\n"),
				"ratings.dat": crlf("1::1::5::978300760\n" +
					"2::73::3::978300760\n" +
					"1::73::4::978300000\n"),
				"users.dat": "1::F::1::10::48067\n",
			},
			items: []catalog.Item{
				{ID: "1", Categories: []string{"Animation", "Children's", "Comedy"}, Popularity: 1},
				{ID: "73", Categories: []string{"Drama", "Musical"}, Popularity: 2},
				{ID: "3", Categories: []string{"Comedy", "Romance"}},
			},
			titles: map[string]string{
				"1":  "Toy Story (1995)",
				"73": "Misérables, Les (1995)",
				"3":  "Grumpier Old Men (1995)",
			},
			ratings: []Rating{
				{"1", "73", 4, 978300000000},
				{"1", "1", 5, 978300760000},
				{"2", "73", 3, 978300760000},
			},
		},
		{
			name:   "ml-100k, latin1, unknown genre",
			format: ML100K,
			files: map[string]string{
				"u.item": "1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/title-exact?Toy%20Story%20(1995)|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n" +
					"267|unknown||||1|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0\n" +
					"814|Gr\xe2ce \xe0 Dieu (1994)|01-Jan-1994||x|0|0|0|0|0|0|0|1|1|0|0|0|0|0|0|0|0|0|1\n" +
					"\n",
				"u.data": "196\t1\t3\t881250949\n" +
					"186\t814\t3\t891717742\n" +
					"22\t1\t1\t878887116\n",
				"u.genre": "unknown|0\n",
			},
			items: []catalog.Item{
				{ID: "1", Categories: []string{"Animation", "Children's", "Comedy"}, Popularity: 2},
				{ID: "267"},
				{ID: "814", Categories: []string{"Documentary", "Drama", "Western"}, Popularity: 1},
			},
			titles: map[string]string{
				"1":   "Toy Story (1995)",
				"267": "unknown",
				"814": "Grâce à Dieu (1994)",
			},
			ratings: []Rating{
				{"22", "1", 1, 878887116000},
				{"196", "1", 3, 881250949000},
				{"186", "814", 3, 891717742000},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds, err := LoadDir(writeFiles(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			if ds.Format != tt.format {
				t.Errorf("Format = %v, want %v", ds.Format, tt.format)
			}
			if !reflect.DeepEqual(ds.Items, tt.items) {
				t.Errorf("Items:\n got %+v\nwant %+v", ds.Items, tt.items)
			}
			if !reflect.DeepEqual(ds.Titles, tt.titles) {
				t.Errorf("Titles:\n got %q\nwant %q", ds.Titles, tt.titles)
			}
			if !slices.Equal(ds.Ratings, tt.ratings) {
				t.Errorf("Ratings:\n got %+v\nwant %+v", ds.Ratings, tt.ratings)
			}
			for _, it := range ds.Items {
				if err := it.Validate(catalog.DefaultDim); err != nil {
					t.Errorf("item %s invalid: %v", it.ID, err)
				}
			}
		})
	}
}

func TestReaders(t *testing.T) {
	// The per-file readers keep file order and canonicalise ids.
	rs, err := ReadRatings(strings.NewReader("userId,movieId,rating,timestamp\n2,010,4.5,10\n1,5,1,5\n"), CSV)
	if err != nil {
		t.Fatal(err)
	}
	want := []Rating{{"2", "10", 4.5, 10000}, {"1", "5", 1, 5000}}
	if !slices.Equal(rs, want) {
		t.Errorf("ReadRatings = %+v, want %+v", rs, want)
	}
	items, titles, err := ReadMoviesTitles(strings.NewReader("7::Caf\xe9::Drama\n"), DAT)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].ID != "7" || titles["7"] != "Café" {
		t.Errorf("ReadMoviesTitles = %+v, %q", items, titles)
	}
	// ml-10m's movies.dat is UTF-8: kept as is.
	_, titles, err = ReadMoviesTitles(strings.NewReader("7::Café::(no genres listed)\n"), DAT)
	if err != nil || titles["7"] != "Café" {
		t.Errorf("UTF-8 title: %q, %v", titles, err)
	}
	items, err = ReadMovies(strings.NewReader("movieId,title,genres\n1,A,Drama|Drama|War\n"), CSV)
	if err != nil || !slices.Equal(items[0].Categories, []string{"Drama", "War"}) {
		t.Errorf("repeated genre: %+v, %v", items, err)
	}
}

func TestMalformed(t *testing.T) {
	tests := []struct {
		name    string
		ratings bool // ReadRatings rather than ReadMovies
		format  Format
		input   string
		line    int
		want    string // the full error message starts with file:line: and contains want
	}{
		{"csv empty", false, CSV, "", 1, "empty file"},
		{"csv header", false, CSV, "id,title,genres\n1,A,Drama\n", 1, `lacks column "movieId"`},
		{"csv bad id", false, CSV, "movieId,title,genres\n1,A,Drama\nx,B,Drama\n", 3, `bad movie id "x"`},
		{"csv negative id", false, CSV, "movieId,title,genres\n-1,A,Drama\n", 2, `bad movie id "-1"`},
		{"csv field count", false, CSV, "movieId,title,genres\r\n1,A,Drama\r\n2,B, C,Drama\r\n", 3, "4 fields, want 3"},
		{"csv too few fields", false, CSV, "movieId,title,genres\n1,A\n", 2, "2 fields, want 3"},
		{"csv bare quote", false, CSV, "movieId,title,genres\n1,A,Drama\n2,B \"x\",Drama\n", 3, `bare "`},
		{"csv line after multi-line title", false, CSV, "movieId,title,genres\n1,\"A\nB\",Drama\nz,C,Drama\n", 4, `bad movie id "z"`},
		{"csv empty genre", false, CSV, "movieId,title,genres\n1,A,Drama||War\n", 2, "empty genre"},
		{"csv trailing bar", false, CSV, "movieId,title,genres\n1,A,Drama|\n", 2, "empty genre"},
		{"csv no genres in list", false, CSV, "movieId,title,genres\n1,A,Drama|(no genres listed)\n", 2, "in a list of genres"},
		{"csv duplicate", false, CSV, "movieId,title,genres\n1,A,Drama\n\n1,B,War\n", 4, "duplicate movie id 1 (first on line 2)"},
		{"csv long genre", false, CSV, "movieId,title,genres\n1,A," + strings.Repeat("x", 65) + "\n", 2, "categories"},
		{"dat separators", false, DAT, "1::A::Drama\n2::B\n", 2, "want MovieID::Title::Genres"},
		{"dat bad id", false, DAT, "1::A::Drama\r\n2a::B::Drama\r\n", 2, `bad movie id "2a"`},
		{"100k fields", false, ML100K, "1|A|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n2|B|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|1\n", 2, "23 '|'-separated fields, want 24"},
		{"100k flag", false, ML100K, "1|A|d||u|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|0|2\n", 1, `genre flag 19 (Western) is "2"`},
		{"ratings csv header", true, CSV, "userId,movieId,rating\n1,1,4\n", 1, `lacks column "timestamp"`},
		{"ratings csv rating", true, CSV, "userId,movieId,rating,timestamp\n1,1,4,5\n1,2,four,5\n", 3, `bad rating "four"`},
		{"ratings csv NaN", true, CSV, "userId,movieId,rating,timestamp\n1,1,NaN,5\n", 2, `bad rating "NaN"`},
		{"ratings csv empty rating", true, CSV, "userId,movieId,rating,timestamp\n1,1,,5\n", 2, `bad rating ""`},
		{"ratings csv ts", true, CSV, "userId,movieId,rating,timestamp\n1,1,4,5.5\n", 2, `bad timestamp "5.5"`},
		{"ratings csv ts range", true, CSV, "userId,movieId,rating,timestamp\n1,1,4,9223372036854776\n", 2, "out of range"},
		{"ratings csv user", true, CSV, "userId,movieId,rating,timestamp\n u,1,4,5\n", 2, `bad user id " u"`},
		{"ratings dat fields", true, DAT, "1::1::5::978300760\n1::2::5\n", 2, "3 fields, want 4"},
		{"ratings dat extra", true, DAT, "1::1::5::978300760::1\n", 1, "more than 4 fields"},
		{"ratings 100k spaces", true, ML100K, "196\t242\t3\t881250949\r\n196 242 3 881250949\r\n", 2, "1 fields, want 4"},
		{"ratings 100k item", true, ML100K, "196\t\t3\t881250949\n", 1, `bad movie id ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			file := tt.format.MoviesFile()
			if tt.ratings {
				file = tt.format.RatingsFile()
				_, err = ReadRatings(strings.NewReader(tt.input), tt.format)
			} else {
				_, err = ReadMovies(strings.NewReader(tt.input), tt.format)
			}
			if err == nil {
				t.Fatal("no error")
			}
			prefix := file + ":" + strconv.Itoa(tt.line) + ": "
			if msg := err.Error(); !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tt.want) {
				t.Errorf("error %q, want %q...%q", msg, prefix, tt.want)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Line != tt.line || pe.File != file {
				t.Errorf("error %#v is not a ParseError for %s line %d", err, file, tt.line)
			}
		})
	}
}

func TestLoadDirErrors(t *testing.T) {
	t.Run("no dataset", func(t *testing.T) {
		_, err := LoadDir(writeFiles(t, map[string]string{"ratings.csv": "userId,movieId,rating,timestamp\n"}))
		if !errors.Is(err, ErrNoDataset) {
			t.Errorf("err = %v, want ErrNoDataset", err)
		}
	})
	t.Run("missing dir", func(t *testing.T) {
		_, err := LoadDir(filepath.Join(t.TempDir(), "nope"))
		if err == nil || errors.Is(err, ErrNoDataset) {
			t.Errorf("err = %v, want a not-exist error", err)
		}
	})
	t.Run("unknown movie", func(t *testing.T) {
		_, err := LoadDir(writeFiles(t, map[string]string{
			"movies.dat":  "1::A::Drama\n",
			"ratings.dat": "1::1::5::1\n2::9::5::1\n",
		}))
		if err == nil || !strings.Contains(err.Error(), "user 2 rated movie 9") {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("path in errors", func(t *testing.T) {
		dir := writeFiles(t, map[string]string{
			"movies.csv":  "movieId,title,genres\n1,A,Drama\n",
			"ratings.csv": "userId,movieId,rating,timestamp\n1,1,5,1\n1,1,5\n",
		})
		_, err := LoadDir(dir)
		if want := filepath.Join(dir, "ratings.csv") + ":3: "; err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("err = %v, want prefix %q", err, want)
		}
	})
	t.Run("bad format", func(t *testing.T) {
		if _, err := ReadMovies(strings.NewReader(""), 0); err == nil {
			t.Error("ReadMovies with Format(0) succeeded")
		}
		if _, err := ReadRatings(strings.NewReader(""), 9); err == nil {
			t.Error("ReadRatings with Format(9) succeeded")
		}
	})
}

func TestParseRating(t *testing.T) {
	for _, s := range []string{"0", "5", "0.5", "3.5", "4.0", "3.7", "0.1", "007.25", "123456789012345",
		"1.23456789012345", "1234567890123456", "0.30000000000000004", "1e3", "+2", ".5", "5."} {
		got, ok := parseRating(s)
		want, err := strconv.ParseFloat(s, 64)
		if ok != (err == nil) || (ok && got != want) {
			t.Errorf("parseRating(%q) = %v, %v; strconv: %v, %v", s, got, ok, want, err)
		}
		if gotb, okb := parseRating([]byte(s)); gotb != got || okb != ok {
			t.Errorf("parseRating([]byte(%q)) = %v, %v; string: %v, %v", s, gotb, okb, got, ok)
		}
	}
	for _, s := range []string{"", ".", "1..2", "Inf", "-Inf", "NaN", "1e400", "x"} {
		if v, ok := parseRating(s); ok {
			t.Errorf("parseRating(%q) = %v, want failure", s, v)
		}
	}
}

func FuzzParseRating(f *testing.F) {
	for _, s := range []string{"4.5", "0.1", "99999999999.9999", "1e3"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, ok := parseRating(s)
		want, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(want, 0) || math.IsNaN(want) {
			if ok {
				t.Fatalf("parseRating(%q) = %v, strconv rejects it: %v", s, got, err)
			}
			return
		}
		if !ok || got != want {
			t.Fatalf("parseRating(%q) = %v, %v; want %v", s, got, ok, want)
		}
	})
}

const smallDir = "../../shared/datasets/ml-latest-small"

func loadSmall(tb testing.TB) *Dataset {
	tb.Helper()
	if _, err := os.Stat(filepath.Join(smallDir, "ratings.csv")); err != nil {
		tb.Skipf("MovieLens ml-latest-small not available at %s (see /work/shared/datasets/README.md): %v", smallDir, err)
	}
	ds, err := LoadDir(smallDir)
	if err != nil {
		tb.Fatal(err)
	}
	return ds
}

func TestLoadDirSmall(t *testing.T) {
	ds := loadSmall(t)
	if ds.Format != CSV {
		t.Errorf("Format = %v", ds.Format)
	}
	if len(ds.Items) != 9742 {
		t.Errorf("%d movies, want 9742", len(ds.Items))
	}
	if len(ds.Ratings) != 100836 {
		t.Errorf("%d ratings, want 100836", len(ds.Ratings))
	}
	users := map[string]bool{}
	rated := map[string]bool{}
	for _, r := range ds.Ratings {
		users[r.UserID] = true
		rated[r.ItemID] = true
		if r.Value < 0.5 || r.Value > 5 || math.Mod(r.Value*2, 1) != 0 {
			t.Fatalf("rating %+v: value not a half star in 0.5..5", r)
		}
	}
	if len(users) != 610 {
		t.Errorf("%d users, want 610", len(users))
	}
	if len(rated) != 9724 {
		t.Errorf("%d rated movies, want 9724", len(rated))
	}
	if !slices.IsSortedFunc(ds.Ratings, func(a, b Rating) int {
		if a.TS != b.TS {
			return int(a.TS - b.TS)
		}
		if c := compareID(a.UserID, b.UserID); c != 0 {
			return c
		}
		return compareID(a.ItemID, b.ItemID)
	}) {
		t.Error("ratings not sorted by time, user, item")
	}
	// 1996-03-29 .. 2018-09-24, in milliseconds.
	if first, last := ds.Ratings[0].TS, ds.Ratings[len(ds.Ratings)-1].TS; first != 828124615000 || last != 1537799250000 {
		t.Errorf("time range %d..%d, want 828124615000..1537799250000", first, last)
	}

	// 20 genre strings appear in movies.csv: 19 genres and "(no genres
	// listed)", which 34 movies carry and which yields no category.
	genres := map[string]int{}
	var pop float64
	uncategorised := 0
	for _, it := range ds.Items {
		if err := it.Validate(catalog.DefaultDim); err != nil {
			t.Errorf("item %s: %v", it.ID, err)
		}
		for _, c := range it.Categories {
			genres[c]++
		}
		if len(it.Categories) == 0 {
			uncategorised++
		}
		pop += it.Popularity
	}
	if len(genres) != 19 || genres[noGenres] != 0 || genres["IMAX"] != 158 || genres["Drama"] != 4361 {
		t.Errorf("%d genres, want 19 (IMAX 158, Drama 4361): %v", len(genres), genres)
	}
	if uncategorised != 34 {
		t.Errorf("%d movies without genres, want 34", uncategorised)
	}
	if pop != 100836 {
		t.Errorf("total popularity %v, want 100836", pop)
	}
	if ds.Items[0].ID != "1" || ds.Items[0].Popularity != 215 {
		t.Errorf("first item %+v, want Toy Story (id 1) with 215 ratings", ds.Items[0])
	}
	for id, want := range map[string]string{
		"1":    "Toy Story (1995)",
		"29":   "City of Lost Children, The (Cité des enfants perdus, La) (1995)",
		"7789": `11'09"01 - September 11 (2002)`,
	} {
		if ds.Titles[id] != want {
			t.Errorf("title %s = %q, want %q", id, ds.Titles[id], want)
		}
	}
}

func BenchmarkLoadDirSmall(b *testing.B) {
	loadSmall(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadDir(smallDir); err != nil {
			b.Fatal(err)
		}
	}
}

func TestSortRatingsStable(t *testing.T) {
	// Many ties on every key; Value records the input position.
	rng := rand.New(rand.NewPCG(1, 2))
	rs := make([]Rating, 5000)
	for i := range rs {
		rs[i] = Rating{
			UserID: strconv.Itoa(rng.IntN(12)),
			ItemID: strconv.Itoa(rng.IntN(12)),
			Value:  float64(i),
			TS:     int64(rng.IntN(20)) * 1000,
		}
	}
	want := slices.Clone(rs)
	slices.SortStableFunc(want, func(a, b Rating) int {
		if a.TS != b.TS {
			return int(a.TS - b.TS)
		}
		ua, _ := strconv.Atoi(a.UserID)
		ub, _ := strconv.Atoi(b.UserID)
		if ua != ub {
			return ua - ub
		}
		ia, _ := strconv.Atoi(a.ItemID)
		ib, _ := strconv.Atoi(b.ItemID)
		return ia - ib
	})
	SortRatings(rs)
	if !slices.Equal(rs, want) {
		t.Error("SortRatings differs from a stable sort by (time, user, item) with numeric ids")
	}
}
