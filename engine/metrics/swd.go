package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/hirez-ml/hirez/engine/imageio"
)

// SWDConfig holds the parameters of the Sliced Wasserstein Distance. DefaultSWD has
// the values of Karras et al. (ProGAN, metrics/sliced_wasserstein.py).
type SWDConfig struct {
	MinRes          int    // the pyramid stops at the last level whose sides are ≥ MinRes (16)
	PatchSize       int    // side of the square patches, odd (7)
	PatchesPerImage int    // patches per image per level (128)
	DirRepeats      int    // repeats of the random projection (4)
	DirsPerRepeat   int    // random directions per repeat (128)
	Seed            uint64 // makes patches and directions reproducible
}

// DefaultSWD returns ProGAN's settings with seed 1.
func DefaultSWD() SWDConfig {
	return SWDConfig{MinRes: 16, PatchSize: 7, PatchesPerImage: 128, DirRepeats: 4, DirsPerRepeat: 128, Seed: 1}
}

func (c SWDConfig) validate() error {
	if c.MinRes < c.PatchSize || c.PatchSize < 1 || c.PatchSize%2 == 0 || c.PatchesPerImage < 1 ||
		c.DirRepeats < 1 || c.DirsPerRepeat < 1 {
		return fmt.Errorf("metrics: invalid SWD config %+v", c)
	}
	return nil
}

// SWDResult is the distance per pyramid level (×10³, finest first) and their mean.
type SWDResult struct {
	Resolutions []int     // side (height) of each level, finest first
	PerLevel    []float64 // SWD ×10³ per level
	Mean        float64   // mean of PerLevel
}

func (r SWDResult) String() string {
	s := ""
	for i, res := range r.Resolutions {
		s += fmt.Sprintf("%d:%.2f ", res, r.PerLevel[i])
	}
	return s + fmt.Sprintf("mean:%.2f", r.Mean)
}

// Level is one level of a Laplacian pyramid: float CHW with 3 channels.
type Level struct {
	W, H int
	Data []float64
}

// pyramidSizes lists the level sizes of a w×h image: halving while both sides stay
// ≥ minRes. Every halving must be exact, or the up- and down-sampled levels would
// not line up.
func pyramidSizes(w, h, minRes int) ([][2]int, error) {
	if w < minRes || h < minRes {
		return nil, fmt.Errorf("metrics: %d×%d image is smaller than the %d px pyramid floor", w, h, minRes)
	}
	var s [][2]int
	for w >= minRes && h >= minRes {
		s = append(s, [2]int{w, h})
		if w/2 < minRes || h/2 < minRes {
			break
		}
		if w%2 != 0 || h%2 != 0 {
			return nil, fmt.Errorf("metrics: %d×%d does not halve evenly down to %d px", w, h, minRes)
		}
		w, h = w/2, h/2
	}
	return s, nil
}

// mirror reflects an index about the edge samples without repeating them
// (d c b | a b c d | c b a), scipy.ndimage's mode='mirror'.
func mirror(i, n int) int {
	if n == 1 {
		return 0
	}
	period := 2 * (n - 1)
	i %= period
	if i < 0 {
		i += period
	}
	if i >= n {
		i = period - i
	}
	return i
}

// blur convolves each w×h plane of src (c planes) with the separable binomial
// filter times gain, mirror boundary.
func blur(src []float64, c, w, h int, gain float64) []float64 {
	// the 1-D factor of the 5×5 filter [1 4 6 4 1]ᵀ[1 4 6 4 1]/256
	binomial := [5]float64{1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16}
	tmp := make([]float64, len(src))
	out := make([]float64, len(src))
	for p := 0; p < c; p++ {
		s, t, o := src[p*w*h:(p+1)*w*h], tmp[p*w*h:(p+1)*w*h], out[p*w*h:(p+1)*w*h]
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var v float64
				for k := -2; k <= 2; k++ {
					v += binomial[k+2] * s[y*w+mirror(x+k, w)]
				}
				t[y*w+x] = v
			}
		}
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				var v float64
				for k := -2; k <= 2; k++ {
					v += binomial[k+2] * t[mirror(y+k, h)*w+x]
				}
				o[y*w+x] = v * gain
			}
		}
	}
	return out
}

// LaplacianPyramid builds ProGAN's pyramid on the 0–255 values of img:
// G0 = image, G(k+1) = every second pixel of blur(G(k)), L(k) = G(k) − up(G(k+1))
// where up inserts zeros and blurs with 4× the filter; the coarsest level (the last
// whose sides are ≥ minRes) is G itself.
func LaplacianPyramid(img *imageio.RGB, minRes int) ([]Level, error) {
	if err := img.Validate(); err != nil {
		return nil, err
	}
	sizes, err := pyramidSizes(img.W, img.H, minRes)
	if err != nil {
		return nil, err
	}
	g := make([]float64, 3*img.W*img.H)
	n := img.W * img.H
	for i := 0; i < n; i++ {
		g[i], g[n+i], g[2*n+i] = float64(img.Pix[i*3]), float64(img.Pix[i*3+1]), float64(img.Pix[i*3+2])
	}
	levels := []Level{{W: img.W, H: img.H, Data: g}}
	for k := 1; k < len(sizes); k++ {
		prev := &levels[k-1]
		w, h := sizes[k][0], sizes[k][1]
		b := blur(prev.Data, 3, prev.W, prev.H, 1)
		down := make([]float64, 3*w*h)
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					down[(c*h+y)*w+x] = b[(c*prev.H+2*y)*prev.W+2*x]
				}
			}
		}
		up := make([]float64, len(prev.Data))
		for c := 0; c < 3; c++ {
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					up[(c*prev.H+2*y)*prev.W+2*x] = down[(c*h+y)*w+x]
				}
			}
		}
		up = blur(up, 3, prev.W, prev.H, 4)
		for i := range prev.Data {
			prev.Data[i] -= up[i]
		}
		levels = append(levels, Level{W: w, H: h, Data: down})
	}
	return levels, nil
}

// Descriptors are the raw (not yet normalised) patch descriptors of an image set:
// per pyramid level, N·PatchesPerImage rows of 3·PatchSize² float32 values laid out
// channel, row, column.
type Descriptors struct {
	Sizes [][2]int    // w, h of each level
	Dim   int         // 3·PatchSize²
	Rows  int         // descriptors per level
	Level [][]float32 // Rows×Dim per level
}

// ImageSource yields the images of a set by index; it is called from several
// goroutines at once and must be safe for that.
type ImageSource func(i int) (*imageio.RGB, error)

// SliceSource serves a slice of images.
func SliceSource(images []*imageio.RGB) ImageSource {
	return func(i int) (*imageio.RGB, error) { return images[i], nil }
}

// ExtractDescriptors samples patch descriptors from n images (all of one size). The
// patch centres of image i come from an RNG seeded by (cfg.Seed, setID, i), so the
// result does not depend on scheduling. Memory: 4·Dim·PatchesPerImage·n bytes per
// level (≈ 75 kB per image per level at the defaults).
func ExtractDescriptors(ctx context.Context, n int, src ImageSource, setID uint64, cfg SWDConfig) (*Descriptors, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if n < 1 {
		return nil, errors.New("metrics: SWD needs at least one image")
	}
	first, err := src(0)
	if err != nil {
		return nil, fmt.Errorf("image 0: %w", err)
	}
	if err := first.Validate(); err != nil {
		return nil, fmt.Errorf("image 0: %w", err)
	}
	sizes, err := pyramidSizes(first.W, first.H, cfg.MinRes)
	if err != nil {
		return nil, err
	}
	ps, ppi := cfg.PatchSize, cfg.PatchesPerImage
	d := &Descriptors{Sizes: sizes, Dim: 3 * ps * ps, Rows: n * ppi, Level: make([][]float32, len(sizes))}
	for k := range d.Level {
		d.Level[k] = make([]float32, d.Rows*d.Dim)
	}
	err = parallelFor(ctx, n, func(i int) error {
		img, err := src(i)
		if err != nil {
			return fmt.Errorf("image %d: %w", i, err)
		}
		if img.W != first.W || img.H != first.H {
			return fmt.Errorf("metrics: image %d is %d×%d, image 0 is %d×%d", i, img.W, img.H, first.W, first.H)
		}
		levels, err := LaplacianPyramid(img, cfg.MinRes)
		if err != nil {
			return fmt.Errorf("image %d: %w", i, err)
		}
		rng := rand.New(rand.NewPCG(cfg.Seed, setID<<40^uint64(i)))
		centres := make([][2]int, ppi)
		for k, lv := range levels {
			for j := range centres {
				// centres uniform in [r, side−r), as numpy randint(r, side−r); x first
				r := ps / 2
				centres[j] = [2]int{r + rng.IntN(lv.W-2*r), r + rng.IntN(lv.H-2*r)}
			}
			patchesAt(d.Level[k][i*ppi*d.Dim:(i+1)*ppi*d.Dim], lv, centres, ps)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// patchesAt copies the ps×ps×3 patches centred at centres (x, y) of lv into dst.
func patchesAt(dst []float32, lv Level, centres [][2]int, ps int) {
	r := ps / 2
	o := 0
	for _, c := range centres {
		for ch := 0; ch < 3; ch++ {
			for dy := -r; dy <= r; dy++ {
				row := lv.Data[(ch*lv.H+c[1]+dy)*lv.W:]
				for dx := -r; dx <= r; dx++ {
					dst[o] = float32(row[c[0]+dx])
					o++
				}
			}
		}
	}
}

// NormalizeDescriptors standardises a Rows×dim descriptor matrix in place, per
// channel (dim/3 consecutive values each), by the mean and population standard
// deviation over all rows and positions of that channel.
func NormalizeDescriptors(desc []float32, dim int) {
	per := dim / 3
	rows := len(desc) / dim
	for ch := 0; ch < 3; ch++ {
		var s, ss float64
		for r := 0; r < rows; r++ {
			for _, v := range desc[r*dim+ch*per : r*dim+(ch+1)*per] {
				s += float64(v)
			}
		}
		cnt := float64(rows * per)
		mean := s / cnt
		for r := 0; r < rows; r++ {
			for _, v := range desc[r*dim+ch*per : r*dim+(ch+1)*per] {
				d := float64(v) - mean
				ss += d * d
			}
		}
		std := math.Sqrt(ss / cnt)
		if std == 0 {
			std = 1 // a constant channel: centre it, nothing to scale
		}
		for r := 0; r < rows; r++ {
			seg := desc[r*dim+ch*per : r*dim+(ch+1)*per]
			for j, v := range seg {
				seg[j] = float32((float64(v) - mean) / std)
			}
		}
	}
}

// RandomDirections draws n Gaussian directions in dim dimensions, each normalised to
// unit length, as an n×dim matrix.
func RandomDirections(rng *rand.Rand, n, dim int) []float32 {
	out := make([]float32, n*dim)
	v := make([]float64, dim)
	for i := 0; i < n; i++ {
		var s float64
		for j := range v {
			v[j] = rng.NormFloat64()
			s += v[j] * v[j]
		}
		s = math.Sqrt(s)
		for j := range v {
			out[i*dim+j] = float32(v[j] / s)
		}
	}
	return out
}

// SlicedWasserstein projects the two equally sized descriptor sets a and b
// (rows×dim) on every direction in dirs (n×dim), sorts each projection and returns
// mean |a − b| over all rows and directions.
func SlicedWasserstein(ctx context.Context, a, b []float32, dim int, dirs []float32) (float64, error) {
	if len(a) != len(b) || len(a) == 0 || len(a)%dim != 0 || len(dirs)%dim != 0 || len(dirs) == 0 {
		return 0, fmt.Errorf("metrics: sliced Wasserstein on %d and %d values, %d direction values, dim %d", len(a), len(b), len(dirs), dim)
	}
	rows, nd := len(a)/dim, len(dirs)/dim
	// Directions are processed in blocks of 4 so each block's projections of a row
	// share the row's loads; one block per task.
	const blk = 4
	nblk := (nd + blk - 1) / blk
	sums := make([]float64, nblk)
	err := parallelFor(ctx, nblk, func(bi int) error {
		d0, d1 := bi*blk, min(nd, (bi+1)*blk)
		pa, pb := make([][]float32, d1-d0), make([][]float32, d1-d0)
		for j := range pa {
			pa[j], pb[j] = make([]float32, rows), make([]float32, rows)
		}
		project(a, dirs[d0*dim:d1*dim], dim, pa)
		project(b, dirs[d0*dim:d1*dim], dim, pb)
		var s float64
		keys, tmp := make([]uint32, rows), make([]uint32, rows)
		for j := range pa {
			sortFloat32(pa[j], keys, tmp)
			sortFloat32(pb[j], keys, tmp)
			for r := range pa[j] {
				s += math.Abs(float64(pa[j][r]) - float64(pb[j][r]))
			}
		}
		sums[bi] = s
		return nil
	})
	if err != nil {
		return 0, err
	}
	var total float64
	for _, s := range sums {
		total += s
	}
	return total / float64(rows*nd), nil
}

// project writes out[j][r] = x[r]·dirs[j] for up to 4 directions.
func project(x, dirs []float32, dim int, out [][]float32) {
	nd := len(out)
	rows := len(x) / dim
	if nd == 4 {
		d0, d1, d2, d3 := dirs[:dim], dirs[dim:2*dim], dirs[2*dim:3*dim], dirs[3*dim:4*dim]
		for r := 0; r < rows; r++ {
			row := x[r*dim : (r+1)*dim]
			var s0, s1, s2, s3 float32
			for k, v := range row {
				s0 += v * d0[k]
				s1 += v * d1[k]
				s2 += v * d2[k]
				s3 += v * d3[k]
			}
			out[0][r], out[1][r], out[2][r], out[3][r] = s0, s1, s2, s3
		}
		return
	}
	for j := 0; j < nd; j++ {
		d := dirs[j*dim : (j+1)*dim]
		for r := 0; r < rows; r++ {
			var s float32
			for k, v := range x[r*dim : (r+1)*dim] {
				s += v * d[k]
			}
			out[j][r] = s
		}
	}
}

// Distance computes the SWD between two descriptor sets of the same shape. It
// normalises copies of both (each by its own statistics), then per level draws
// DirRepeats×DirsPerRepeat directions from cfg.Seed and averages the sliced
// Wasserstein distance; results are ×10³.
func Distance(ctx context.Context, a, b *Descriptors, cfg SWDConfig) (SWDResult, error) {
	if err := cfg.validate(); err != nil {
		return SWDResult{}, err
	}
	if a.Dim != b.Dim || a.Rows != b.Rows || !slices.Equal(a.Sizes, b.Sizes) {
		return SWDResult{}, fmt.Errorf("metrics: SWD sets differ in shape: %d×%d %v vs %d×%d %v", a.Rows, a.Dim, a.Sizes, b.Rows, b.Dim, b.Sizes)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed_d1f5))
	res := SWDResult{}
	for k := range a.Level {
		da, db := slices.Clone(a.Level[k]), slices.Clone(b.Level[k])
		NormalizeDescriptors(da, a.Dim)
		NormalizeDescriptors(db, b.Dim)
		var sum float64
		for rep := 0; rep < cfg.DirRepeats; rep++ {
			dirs := RandomDirections(rng, cfg.DirsPerRepeat, a.Dim)
			d, err := SlicedWasserstein(ctx, da, db, a.Dim, dirs)
			if err != nil {
				return SWDResult{}, err
			}
			sum += d
		}
		res.Resolutions = append(res.Resolutions, a.Sizes[k][1])
		res.PerLevel = append(res.PerLevel, 1e3*sum/float64(cfg.DirRepeats))
	}
	for _, v := range res.PerLevel {
		res.Mean += v
	}
	res.Mean /= float64(len(res.PerLevel))
	return res, nil
}

// SWD is the Sliced Wasserstein Distance between two image sets of equal count and
// size (e.g. real and generated), deterministic given cfg.Seed.
func SWD(ctx context.Context, a, b []*imageio.RGB, cfg SWDConfig) (SWDResult, error) {
	if len(a) != len(b) {
		return SWDResult{}, fmt.Errorf("metrics: SWD sets have %d and %d images; use the same count", len(a), len(b))
	}
	return SWDSources(ctx, len(a), SliceSource(a), SliceSource(b), cfg)
}

// SWDSources is SWD over n images from each source, for sets too large to hold.
func SWDSources(ctx context.Context, n int, a, b ImageSource, cfg SWDConfig) (SWDResult, error) {
	da, err := ExtractDescriptors(ctx, n, a, 1, cfg)
	if err != nil {
		return SWDResult{}, fmt.Errorf("first set: %w", err)
	}
	db, err := ExtractDescriptors(ctx, n, b, 2, cfg)
	if err != nil {
		return SWDResult{}, fmt.Errorf("second set: %w", err)
	}
	return Distance(ctx, da, db, cfg)
}

// SWDFloor is the real-versus-real floor printed beside every SWD: the metric
// between two disjoint halves of real, split by a shuffle seeded by cfg.Seed. Give
// it 2n real images to compare with an SWD on n.
func SWDFloor(ctx context.Context, real []*imageio.RGB, cfg SWDConfig) (SWDResult, error) {
	if len(real) < 2 {
		return SWDResult{}, errors.New("metrics: SWD floor needs at least two real images")
	}
	perm := rand.New(rand.NewPCG(cfg.Seed, 0xf1002)).Perm(len(real))
	half := len(real) / 2
	a, b := make([]*imageio.RGB, half), make([]*imageio.RGB, half)
	for i := 0; i < half; i++ {
		a[i], b[i] = real[perm[i]], real[perm[half+i]]
	}
	return SWD(ctx, a, b, cfg)
}

// parallelFor runs fn(0..n-1) on GOMAXPROCS goroutines and returns the first error;
// it stops handing out work once ctx is done or a call failed.
func parallelFor(ctx context.Context, n int, fn func(i int) error) error {
	workers := min(runtime.GOMAXPROCS(0), n)
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first == nil {
					first = ctx.Err()
				}
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
