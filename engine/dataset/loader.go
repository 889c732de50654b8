// Package dataset turns folders of images into training batches: float32 NCHW on the
// host, in [−1, 1] or [0, 1], shuffled per epoch from a seed, optionally flipped,
// decoded lazily with a bounded prefetch, and resumable from a small State. It also
// makes super-resolution pairs (random HR patches and their MATLAB-bicubic LR) and
// holds the train/held-out split rule of the emoji sets, their labels (Unicode
// emoji group, subgroup and name, from emoji-test.txt) and a filter on them
// (Options.Groups). It does not depend on the engine's backends: a trainer copies
// the batches to its device.
package dataset

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
)

// Range is the float range of the batches.
type Range int

const (
	RangeSigned Range = iota // [−1, 1], v/127.5 − 1 (DCGAN, tanh output)
	Range01                  // [0, 1], v/255 (SRCNN)
)

// Resample is how images are brought to the requested size after the centre crop.
type Resample int

const (
	// Bicubic is MATLAB-style antialiased bicubic (metrics.ImresizeTo).
	Bicubic Resample = iota
	// Box averages s×s blocks when the side is an integer multiple s of the size
	// (and falls back to Bicubic when it is not).
	Box
)

// SROptions switch the loader to super-resolution pairs: per image, PatchesPerImage
// random HR patches of Patch×Patch and the matching LR patches cut from the whole
// image downscaled by MATLAB bicubic (so patch borders see real neighbours, as in
// the evaluation protocol).
type SROptions struct {
	Scale           int // 2, 3, 4…
	Patch           int // HR patch side, a multiple of Scale
	PatchesPerImage int // 0 means 1; must divide BatchSize
}

// Options configure a Loader.
type Options struct {
	Dir       string // folder searched recursively for .png, .jpg, .jpeg, .webp
	Size      int    // image mode: output side (centre crop to a square, then resample)
	Resample  Resample
	Range     Range
	BatchSize int
	Shuffle   bool   // a new permutation every epoch, from Seed and the epoch number
	Seed      uint64 // drives shuffling, flips and SR patch positions
	FlipH     bool   // flip half of the samples horizontally (decided per sample from Seed)
	DropLast  bool   // drop an epoch's last, smaller batch
	Prefetch  int    // batches prepared ahead; 0 means 2
	Workers   int    // decoding goroutines; 0 means GOMAXPROCS
	Limits    imageio.Limits
	SR        *SROptions // nil: image mode
	// Groups, when not empty, keeps only the images whose Unicode emoji group
	// is one of these ("Smileys & Emotion", dataset.Unlisted…), by the set's
	// labels.tsv found next to Dir (see LabelsFor: in Dir, else in its parent,
	// so Dir data/noto128/train reads data/noto128/labels.tsv). A group the
	// labels file does not know is an error that lists the known ones; files the
	// labels file does not list are left out.
	Groups []string
	// Balance, with two or more Groups and Shuffle, draws every group equally
	// often: each epoch cycles each group's images (in an order of their own)
	// up to the largest group's count, then shuffles the whole list. Small
	// groups repeat within an epoch instead of being outnumbered, so a
	// class-conditional GAN sees every class as often (a group of 150 images
	// beside one of 2000 would otherwise get 7 % of the steps).
	Balance bool
}

// Batch is one batch in NCHW float32.
type Batch struct {
	N      int       // samples
	X      []float32 // images (image mode) or LR patches (SR mode), N×3×H×W
	XShape [4]int
	Y      []float32 // HR patches in SR mode, nil in image mode
	YShape [4]int
	Files  []string // source file of each sample
	Epoch  int
}

// State is where a Loader stands: restoring it reproduces the following batches
// exactly (for checkpoint and resume).
type State struct {
	Epoch int    // current epoch, from 0
	Pos   int    // position in this epoch's permutation of the files
	Seed  uint64 // the shuffling seed
}

// Stats count what the loader has seen. Corrupt and TooSmall count distinct files;
// such files are skipped in every epoch.
type Stats struct {
	Files    int      // image files found
	Corrupt  int      // files that failed to decode
	TooSmall int      // images smaller than the requested size or patch
	Samples  int64    // samples delivered
	Batches  int64    // batches delivered
	Errors   []string // the first few skip reasons, for the log
}

// ErrNoImages is returned when a folder has no usable image.
var ErrNoImages = errors.New("dataset: no usable images")

type skipKind int

const (
	skipNone skipKind = iota
	skipCorrupt
	skipTooSmall
)

type item struct {
	batch *Batch
	state State // after this item
	eof   bool
	err   error
}

// Loader produces batches from a folder. Use one consumer goroutine; Stats may be
// called from anywhere.
type Loader struct {
	opt   Options
	files []string
	ppi   int     // samples per image
	group [][]int // Balance: each group's file indices, else nil

	mu     sync.Mutex
	state  State
	stats  Stats
	bad    map[int]skipKind
	ch     chan item
	cancel context.CancelFunc
	done   chan struct{}
	failed error // sticky producer error
}

// NewLoader lists the folder (decoding nothing yet) and checks the options.
func NewLoader(opt Options) (*Loader, error) {
	if opt.BatchSize < 1 {
		return nil, fmt.Errorf("dataset: batch size %d", opt.BatchSize)
	}
	if opt.Prefetch <= 0 {
		opt.Prefetch = 2
	}
	if opt.Workers <= 0 {
		opt.Workers = runtime.GOMAXPROCS(0)
	}
	ppi := 1
	if sr := opt.SR; sr != nil {
		if sr.PatchesPerImage > 0 {
			ppi = sr.PatchesPerImage
		}
		if sr.Scale < 1 || sr.Patch < sr.Scale || sr.Patch%sr.Scale != 0 {
			return nil, fmt.Errorf("dataset: SR patch %d must be a positive multiple of scale %d", sr.Patch, sr.Scale)
		}
		if opt.BatchSize%ppi != 0 {
			return nil, fmt.Errorf("dataset: %d patches per image must divide the batch size %d", ppi, opt.BatchSize)
		}
	} else if opt.Size < 1 {
		return nil, fmt.Errorf("dataset: image size %d", opt.Size)
	}
	files, err := ListImages(opt.Dir)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: no .png/.jpg/.webp files under %s", ErrNoImages, opt.Dir)
	}
	if opt.Balance && (len(opt.Groups) < 2 || !opt.Shuffle) {
		return nil, fmt.Errorf("dataset: Balance needs Shuffle and two or more Groups, got %d", len(opt.Groups))
	}
	var group [][]int
	if len(opt.Groups) > 0 {
		var groupOf []int
		if files, groupOf, err = filterGroups(opt.Dir, files, opt.Groups); err != nil {
			return nil, err
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w: no image of group %q under %s", ErrNoImages, opt.Groups, opt.Dir)
		}
		if opt.Balance {
			group = make([][]int, len(opt.Groups))
			for i, g := range groupOf {
				group[g] = append(group[g], i)
			}
			for g, members := range group {
				if len(members) == 0 {
					return nil, fmt.Errorf("%w: no image of group %q under %s to balance the others with", ErrNoImages, opt.Groups[g], opt.Dir)
				}
			}
		}
	}
	return &Loader{
		opt: opt, files: files, ppi: ppi, group: group,
		state: State{Seed: opt.Seed},
		stats: Stats{Files: len(files)},
		bad:   map[int]skipKind{},
	}, nil
}

// ListImages lists the image files a Loader of dir reads (.png, .jpg, .jpeg,
// .webp, recursively, hidden files skipped), sorted, as Batch.Files names them.
func ListImages(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".png", ".jpg", ".jpeg", ".webp":
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dataset: list %s: %w", dir, err)
	}
	slices.Sort(files)
	return files, nil
}

// Files returns the image files found, sorted.
func (l *Loader) Files() []string { return slices.Clone(l.files) }

// State returns the position after the last batch returned by Next.
func (l *Loader) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

// Stats returns a snapshot of the counters.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.stats
	s.Errors = slices.Clone(s.Errors)
	return s
}

// Restore moves the loader to st (from State, possibly in an earlier process).
func (l *Loader) Restore(st State) error {
	if n := l.epochLen(); st.Epoch < 0 || st.Pos < 0 || st.Pos > n {
		return fmt.Errorf("dataset: state %+v does not fit an epoch of %d samples", st, n)
	}
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.state = st
	l.failed = nil
	return nil
}

// Close stops the prefetching goroutines. The loader may be used again afterwards
// (it restarts from State).
func (l *Loader) Close() { l.stop() }

func (l *Loader) stop() {
	l.mu.Lock()
	cancel, done := l.cancel, l.done
	l.ch, l.cancel, l.done = nil, nil, nil
	l.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// Next returns the next batch of the current epoch, or io.EOF once at the end of
// each epoch (the following call starts the next epoch).
func (l *Loader) Next(ctx context.Context) (*Batch, error) {
	// A cancelled caller gets its error even when a batch is ready: select
	// picks at random among ready cases.
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	if l.failed != nil {
		err := l.failed
		l.mu.Unlock()
		return nil, err
	}
	if l.ch == nil {
		pctx, cancel := context.WithCancel(context.Background())
		l.ch = make(chan item, l.opt.Prefetch)
		l.cancel, l.done = cancel, make(chan struct{})
		go l.produce(pctx, l.state, l.ch, l.done)
	}
	ch := l.ch
	l.mu.Unlock()
	var it item
	select {
	case it = <-ch:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if it.err != nil {
		l.failed = it.err
		return nil, it.err
	}
	l.state = it.state
	if it.eof {
		return nil, io.EOF
	}
	l.stats.Batches++
	l.stats.Samples += int64(it.batch.N)
	return it.batch, nil
}

// epochLen is the length of an epoch's permutation: the files, or with
// Balance the largest group's count for every group.
func (l *Loader) epochLen() int {
	if l.group == nil {
		return len(l.files)
	}
	most := 0
	for _, members := range l.group {
		most = max(most, len(members))
	}
	return most * len(l.group)
}

func (l *Loader) perm(st State) []int {
	if !l.opt.Shuffle {
		p := make([]int, len(l.files))
		for i := range p {
			p[i] = i
		}
		return p
	}
	rng := rand.New(rand.NewPCG(st.Seed, uint64(st.Epoch)))
	if l.group == nil {
		return rng.Perm(len(l.files))
	}
	most := l.epochLen() / len(l.group)
	p := make([]int, 0, l.epochLen())
	for _, members := range l.group {
		order := rng.Perm(len(members))
		for k := range most {
			p = append(p, members[order[k%len(members)]])
		}
	}
	rng.Shuffle(len(p), func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// produce fills ch with batches from st on until ctx is cancelled.
func (l *Loader) produce(ctx context.Context, st State, ch chan<- item, done chan<- struct{}) {
	defer close(done)
	send := func(it item) bool {
		select {
		case ch <- it:
			return true
		case <-ctx.Done():
			return false
		}
	}
	perImages := l.opt.BatchSize / l.ppi
	for {
		perm := l.perm(st)
		// A state restored mid-epoch (or right after its last batch, Pos = len,
		// which is where a checkpoint taken at the epoch end stands) owes only the
		// rest of that epoch: an empty rest ends it, it does not mean the folder is
		// too small. Only a whole epoch that yields nothing is an error.
		wholeEpoch := st.Pos == 0
		delivered := 0
		for st.Pos < len(perm) {
			var got []sample
			for len(got) < perImages && st.Pos < len(perm) {
				var cand []int // positions in perm
				for st.Pos < len(perm) && len(cand) < perImages-len(got) {
					if !l.isBad(perm[st.Pos]) {
						cand = append(cand, st.Pos)
					}
					st.Pos++
				}
				res := l.loadAll(ctx, perm, cand, st)
				if ctx.Err() != nil {
					return
				}
				for _, r := range res {
					if r.skip == skipNone {
						got = append(got, r)
					}
				}
			}
			if len(got) == 0 || len(got) < perImages && l.opt.DropLast {
				break
			}
			if !send(item{batch: l.assemble(got, st.Epoch), state: st}) {
				return
			}
			delivered++
		}
		if delivered == 0 && wholeEpoch {
			err := fmt.Errorf("%w in %s: fewer usable images than one batch of %d", ErrNoImages, l.opt.Dir, l.opt.BatchSize)
			if l.allBad() {
				err = fmt.Errorf("%w in %s: all %d files corrupt or too small (%v)", ErrNoImages, l.opt.Dir, len(l.files), l.Stats().Errors)
			}
			send(item{err: err})
			return
		}
		st = State{Epoch: st.Epoch + 1, Seed: st.Seed}
		if !send(item{eof: true, state: st}) {
			return
		}
	}
}

func (l *Loader) isBad(i int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.bad[i] != skipNone
}

func (l *Loader) allBad() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.bad) == len(l.files)
}

// sample is what one image contributes: ppi samples of X (and Y) values.
type sample struct {
	file string
	x, y []float32
	skip skipKind
}

// loadAll decodes the files at the given permutation positions in parallel and
// returns them in order, recording skipped files.
func (l *Loader) loadAll(ctx context.Context, perm, positions []int, st State) []sample {
	out := make([]sample, len(positions))
	sem := make(chan struct{}, l.opt.Workers)
	var wg sync.WaitGroup
	for k, pos := range positions {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			idx := perm[pos]
			// one RNG per (seed, epoch, position): independent of scheduling
			rng := rand.New(rand.NewPCG(st.Seed^0x9e3779b97f4a7c15*uint64(st.Epoch+1), uint64(pos)))
			s, err := l.load(l.files[idx], rng)
			s.file = l.files[idx]
			if s.skip != skipNone {
				l.mu.Lock()
				if l.bad[idx] == skipNone {
					l.bad[idx] = s.skip
					if s.skip == skipCorrupt {
						l.stats.Corrupt++
					} else {
						l.stats.TooSmall++
					}
					if len(l.stats.Errors) < 10 {
						l.stats.Errors = append(l.stats.Errors, err.Error())
					}
				}
				l.mu.Unlock()
			}
			out[k] = s
		}()
	}
	wg.Wait()
	return out
}

// load turns one file into its samples.
func (l *Loader) load(path string, rng *rand.Rand) (sample, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return sample{skip: skipCorrupt}, err
	}
	need := l.opt.Size
	if l.opt.SR != nil {
		need = l.opt.SR.Patch
	}
	// Reject small images from the header, before decoding pixels.
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil && min(cfg.Width, cfg.Height) < need {
		return sample{skip: skipTooSmall}, fmt.Errorf("%s: %d×%d is smaller than %d", path, cfg.Width, cfg.Height, need)
	}
	img, err := imageio.Decode(data, l.opt.Limits)
	if err != nil {
		return sample{skip: skipCorrupt}, fmt.Errorf("%s: %w", path, err)
	}
	conv := imageio.AppendCHWSigned
	if l.opt.Range == Range01 {
		conv = imageio.AppendCHW01
	}
	if l.opt.SR == nil {
		img, err = squareResize(img, l.opt.Size, l.opt.Resample)
		if err != nil {
			return sample{skip: skipCorrupt}, fmt.Errorf("%s: %w", path, err)
		}
		if l.opt.FlipH && rng.IntN(2) == 1 {
			img.FlipH()
		}
		return sample{x: conv(nil, img)}, nil
	}
	sr := l.opt.SR
	hr, err := metrics.Modcrop(img, sr.Scale)
	if err != nil {
		return sample{skip: skipTooSmall}, fmt.Errorf("%s: %w", path, err)
	}
	lr, err := metrics.Imresize(hr, 1/float64(sr.Scale))
	if err != nil {
		return sample{skip: skipCorrupt}, fmt.Errorf("%s: %w", path, err)
	}
	lp := sr.Patch / sr.Scale
	var s sample
	for k := 0; k < l.ppi; k++ {
		x0, y0 := rng.IntN(lr.W-lp+1), rng.IntN(lr.H-lp+1)
		lpatch, err1 := lr.Crop(x0, y0, lp, lp)
		hpatch, err2 := hr.Crop(x0*sr.Scale, y0*sr.Scale, sr.Patch, sr.Patch)
		if err := errors.Join(err1, err2); err != nil {
			return sample{skip: skipTooSmall}, fmt.Errorf("%s: %w", path, err)
		}
		if l.opt.FlipH && rng.IntN(2) == 1 {
			lpatch.FlipH()
			hpatch.FlipH()
		}
		s.x = conv(s.x, lpatch)
		s.y = conv(s.y, hpatch)
	}
	return s, nil
}

func (l *Loader) assemble(got []sample, epoch int) *Batch {
	b := &Batch{N: len(got) * l.ppi, Epoch: epoch}
	if l.opt.SR == nil {
		b.XShape = [4]int{b.N, 3, l.opt.Size, l.opt.Size}
	} else {
		lp := l.opt.SR.Patch / l.opt.SR.Scale
		b.XShape = [4]int{b.N, 3, lp, lp}
		b.YShape = [4]int{b.N, 3, l.opt.SR.Patch, l.opt.SR.Patch}
		b.Y = make([]float32, 0, b.N*3*l.opt.SR.Patch*l.opt.SR.Patch)
	}
	b.X = make([]float32, 0, b.XShape[0]*b.XShape[1]*b.XShape[2]*b.XShape[3])
	for _, s := range got {
		b.X = append(b.X, s.x...)
		b.Y = append(b.Y, s.y...)
		for k := 0; k < l.ppi; k++ {
			b.Files = append(b.Files, s.file)
		}
	}
	return b
}

// squareResize centre-crops img to a square and resamples it to size×size.
func squareResize(img *imageio.RGB, size int, mode Resample) (*imageio.RGB, error) {
	side := min(img.W, img.H)
	if img.W != img.H {
		var err error
		if img, err = img.CenterCrop(side, side); err != nil {
			return nil, err
		}
	}
	switch {
	case side == size:
		return img, nil
	case mode == Box && side%size == 0:
		return boxDown(img, side/size), nil
	}
	return metrics.ImresizeTo(img, size, size)
}

// boxDown averages f×f blocks (rounding half up).
func boxDown(img *imageio.RGB, f int) *imageio.RGB {
	w, h := img.W/f, img.H/f
	out := imageio.NewRGB(w, h)
	out.Gray = img.Gray
	n := f * f
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s [3]int
			for dy := 0; dy < f; dy++ {
				row := img.Pix[((y*f+dy)*img.W+x*f)*3:]
				for dx := 0; dx < f*3; dx += 3 {
					s[0] += int(row[dx])
					s[1] += int(row[dx+1])
					s[2] += int(row[dx+2])
				}
			}
			out.Set(x, y, uint8((s[0]+n/2)/n), uint8((s[1]+n/2)/n), uint8((s[2]+n/2)/n))
		}
	}
	return out
}
