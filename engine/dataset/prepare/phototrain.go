package prepare

// Photographs for SR training, from two Debian wallpaper packages (docs/data.md,
// "Photo SR training set"): plasma-workspace-wallpapers (KDE; one folder per
// wallpaper with a metadata.json or metadata.desktop naming author and licence,
// contents/images/WxH.ext where the sizes other than the largest are symlinks)
// and mate-backgrounds (backgrounds/mate/nature/*.jpg; authors and licence in the
// Debian copyright file, names in mate-background-properties/mate-nature.xml).

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/metrics"
)

// Debian package names of the photo sources.
const (
	PlasmaPackage = "plasma-workspace-wallpapers"
	MatePackage   = "mate-backgrounds"
)

// PhotoDecision is the reviewed verdict on one wallpaper of a source package: kept
// as a photograph or left out, with the reason. The decisions were made by looking
// at every wallpaper (contact sheet at ≈ 240 px, then 1:1 crops where a thumbnail
// did not decide) of plasma-workspace-wallpapers 4:5.27.5-2 and mate-backgrounds
// 1.26.0-1 (Debian bookworm).
type PhotoDecision struct {
	Package string // PlasmaPackage or MatePackage
	Name    string // plasma: the wallpaper folder; mate: the file stem in backgrounds/mate/nature
	Keep    bool   // a photograph: used
	HeldOut bool   // kept for in-domain validation (data/photos-train/heldout), never trained on
	Reason  string
}

// PhotoDecisions lists every wallpaper of the two packages' reviewed versions.
// A wallpaper a later package version adds is not used until it is reviewed and
// listed here (PhotoTrainReport.Unreviewed). Only mate's nature/ folder is read:
// its abstract/ and desktop/ folders are graphics (see docs/data.md).
var PhotoDecisions = []PhotoDecision{
	{PlasmaPackage, "Altai", false, false, "illustration: low-poly mountains"},
	{PlasmaPackage, "Autumn", false, false, "illustration: painted tree and girl"},
	{PlasmaPackage, "BytheWater", true, false, "photograph: wooden jetty planks at a lake, sunlight"},
	{PlasmaPackage, "Canopee", false, false, "illustration: 3D render of hexagon tiles"},
	{PlasmaPackage, "Cascade", false, false, "illustration: 3D render"},
	{PlasmaPackage, "Cluster", false, false, "illustration: hexagon pattern"},
	{PlasmaPackage, "ColdRipple", true, false, "photograph: pier in fog (near-monochrome)"},
	{PlasmaPackage, "ColorfulCups", true, false, "photograph: stacked plastic cups"},
	{PlasmaPackage, "DarkestHour", true, false, "photograph: misty lake at dusk (little detail)"},
	{PlasmaPackage, "Elarun", false, false, "illustration: vector curves"},
	{PlasmaPackage, "EveningGlow", true, false, "photograph: rowing boats on a lake shore, sunset"},
	{PlasmaPackage, "FallenLeaf", true, false, "photograph: autumn leaves, shallow depth of field"},
	{PlasmaPackage, "Flow", false, false, "illustration: hexagon path"},
	{PlasmaPackage, "FlyingKonqui", false, false, "illustration: cartoon dragon mascot"},
	{PlasmaPackage, "Grey", true, false, "photograph: curved building facade, greyscale"},
	{PlasmaPackage, "Honeywave", false, false, "illustration: abstract shapes"},
	{PlasmaPackage, "IceCold", false, false, "illustration: hexagon ice and water"},
	{PlasmaPackage, "Kay", false, false, "illustration: abstract triangles"},
	{PlasmaPackage, "Kite", true, false, "photograph: a kite against blue sky (mostly smooth sky)"},
	{PlasmaPackage, "Kokkini", false, false, "illustration: abstract 3D surface"},
	{PlasmaPackage, "MilkyWay", false, false, "illustration: particle swirl"},
	{PlasmaPackage, "OneStandsOut", true, false, "photograph: moss from above, one orange tip"},
	{PlasmaPackage, "Opal", false, false, "illustration: 3D facets"},
	{PlasmaPackage, "PastelHills", false, false, "illustration: low-poly pastel hills"},
	{PlasmaPackage, "Patak", false, false, "illustration: low-poly water and boat"},
	{PlasmaPackage, "Path", true, true, "photograph: forest path; held out (the most detailed: bicubic ×2 29.6 dB at 2560×1600)"},
	{PlasmaPackage, "SafeLanding", false, false, "illustration: painted rocket landscape"},
	{PlasmaPackage, "Shell", false, false, "illustration: abstract folds"},
	{PlasmaPackage, "Volna", false, false, "illustration: digital art of a shore (flat shaded polygons at 1:1)"},
	{PlasmaPackage, "summer_1am", true, false, "photograph: lake under a summer night sky"},

	{MatePackage, "Aqua", true, false, "photograph: water drop splash"},
	{MatePackage, "Blinds", true, false, "photograph: backlit leaf veins"},
	{MatePackage, "Dune", true, true, "photograph: dune grass against the sea; held out (mate's most detailed, bicubic ×2 40.2 dB: the soft-photo case)"},
	{MatePackage, "FreshFlower", true, false, "photograph: orange flower close-up"},
	{MatePackage, "Garden", true, false, "photograph: red flower, blurred background"},
	{MatePackage, "GreenMeadow", true, false, "photograph: young grass"},
	{MatePackage, "LadyBird", true, false, "photograph: ladybird on a stem among flowers"},
	{MatePackage, "RainDrops", true, false, "photograph: drops on green leaves"},
	{MatePackage, "Storm", true, false, "photograph: storm clouds over a road (motion blur)"},
	{MatePackage, "TwoWings", true, false, "photograph: dandelion seeds, blurred background"},
	{MatePackage, "Wood", true, false, "photograph: weathered wooden board"},
	{MatePackage, "YellowFlower", true, false, "photograph: yellow flower close-up"},
}

// PhotoLicense is one line of licenses.tsv: a written file and where it comes from.
type PhotoLicense struct {
	File      string // relative to the set root: train/plasma-Path-r0c1.png
	Package   string // Debian package
	Version   string // its version
	Wallpaper string // the wallpaper's name as its package writes it
	Author    string // as its package's metadata writes it
	License   string // as its package's metadata writes it
	Source    string // the source file inside the package
}

// PhotoLicensesFile is the provenance table in the set root.
const PhotoLicensesFile = "licenses.tsv"

const photoLicensesHeader = "file\tpackage\tversion\twallpaper\tauthor\tlicense\tsource"

// PhotoTrainOptions configure PhotoTrain.
type PhotoTrainOptions struct {
	PlasmaRoot, PlasmaVersion string // extracted plasma-workspace-wallpapers (the folder holding usr/); "" skips it
	MateRoot, MateVersion     string // extracted mate-backgrounds; "" skips it
	Out                       string // set root: Out/train, Out/heldout, Out/licenses.tsv
	Licenses                  string // if set, each kept plasma wallpaper's metadata file is copied to Licenses/plasma-workspace-wallpapers/<name>.metadata.json (or .desktop)
	Tile                      int    // training images are cut into tiles of at most Tile×Tile (0: DefaultPhotoTile); held-out images stay whole
	// MaxBicubicPSNR leaves out the training tiles that bicubic ×2 already
	// reproduces to this Y PSNR (dB) or better — out-of-focus backgrounds, sky, fog —
	// (0: DefaultPhotoMaxBicubicPSNR; negative: keep every tile). Held-out images are whole and never filtered.
	MaxBicubicPSNR float64
	Downscale      int // every photograph is first reduced by this integer factor (MATLAB bicubic, metrics.Imresize); 0: DefaultPhotoDownscale, 1: native size
}

// DefaultPhotoTile is the largest training tile side. The SR loader decodes and
// bicubic-downscales a whole file for each visit to cut its 4 patches, so the cost
// of a batch grows with the file: measured on the 2-core VM (niced, shared), decode
// + modcrop + ×½ of a 2560×1600 photo 318 ms, a 512×400 tile 27 ms, a 256×228 tile
// 6 ms (a fluent256 emoji 3 ms). Batch 32 = 8 files; at 256 the loader keeps up
// with an espcn-residual step (≈ 50 ms), at 512 it would not.
const DefaultPhotoTile = 256

// DefaultPhotoDownscale keeps the photos at their largest size; ×2 (113 tiles, 5.8 Mpx
// after the flat-tile filter) is the measured alternative (docs/data.md).
const DefaultPhotoDownscale = 1

// DefaultPhotoMaxBicubicPSNR: the wallpapers at their largest size are mostly
// smooth — 1305 tiles of 256² whose bicubic ×2 Y PSNR is 38.8 dB over all, median
// 48-px patch 50.8 dB, against 32.5 dB and 34.4 dB for the scikit-image photos — so
// most random patches would teach nothing. The 256 tiles under 40 dB (20 % of the
// pixels) hold 89.8 % of the bicubic residual energy and, together, have a bicubic
// PSNR of 32.2 dB, as the evaluation photos do (docs/data.md).
const DefaultPhotoMaxBicubicPSNR = 40

// PhotoTrainReport counts what PhotoTrain wrote.
type PhotoTrainReport struct {
	Photos        map[string]int // kept photographs per package (train + held out)
	Train         int            // training tiles
	Flat          int            // tiles left out by MaxBicubicPSNR
	AllFlat       []string       // training photographs none of whose tiles passed MaxBicubicPSNR
	TrainPhotos   int
	TrainPixels   int64
	HeldOut       int // held-out photographs (whole)
	HeldOutPixels int64
	LeftOut       int      // reviewed and left out (not photographs)
	Unreviewed    []string // in the package but not in PhotoDecisions: not used
	Missing       []string // kept in PhotoDecisions but not in the package
	Licenses      map[string]int
}

func (r PhotoTrainReport) String() string {
	var pk []string
	for _, p := range []string{PlasmaPackage, MatePackage} {
		if n, ok := r.Photos[p]; ok {
			pk = append(pk, fmt.Sprintf("%s %d", p, n))
		}
	}
	var lic []string
	for l, n := range r.Licenses {
		lic = append(lic, fmt.Sprintf("%s %d", l, n))
	}
	slices.Sort(lic)
	s := fmt.Sprintf("photos-train %d photographs (%s): train %d photos in %d tiles (%.1f Mpx; %d flat tiles left out), held out %d (%.1f Mpx); %d wallpapers left out (not photographs); licences: %s",
		r.TrainPhotos+r.HeldOut, strings.Join(pk, ", "), r.TrainPhotos, r.Train, float64(r.TrainPixels)/1e6, r.Flat,
		r.HeldOut, float64(r.HeldOutPixels)/1e6, r.LeftOut, strings.Join(lic, ", "))
	if len(r.AllFlat) > 0 {
		s += fmt.Sprintf("\n  %d photographs have no tile under the PSNR bound (too soft at this size): %s", len(r.AllFlat), strings.Join(r.AllFlat, ", "))
	}
	if len(r.Unreviewed) > 0 {
		s += fmt.Sprintf("\n  WARNING: %d wallpapers not reviewed, not used (list them in prepare.PhotoDecisions): %s", len(r.Unreviewed), strings.Join(r.Unreviewed, ", "))
	}
	if len(r.Missing) > 0 {
		s += fmt.Sprintf("\n  WARNING: %d kept wallpapers missing from the package: %s", len(r.Missing), strings.Join(r.Missing, ", "))
	}
	return s
}

// photoSource is one kept photograph, read from its package.
type photoSource struct {
	dec      PhotoDecision
	path     string // absolute path of the image
	lic      PhotoLicense
	metadata string // plasma: the metadata file, copied to Options.Licenses
	w, h     int    // size from the file name (plasma) or 0
}

// PhotoTrain writes the kept photographs of PhotoDecisions: training photos cut
// into tiles of at most opt.Tile² (TileGrid) as Out/train/<pkg>-<name>-r<row>c<col>.png,
// held-out photos whole as Out/heldout/<pkg>-<name>.png (pkg: plasma or mate), each
// from its largest size (plasma: the largest WxH.ext regular file of contents/images;
// the dark variants of images_dark are not read), grey stays grey; and
// Out/licenses.tsv, one line per written file with the wallpaper's package, version,
// name, author and licence as the package's metadata writes them. Out/train,
// Out/heldout and licenses.tsv are rebuilt from nothing.
func PhotoTrain(ctx context.Context, opt PhotoTrainOptions) (PhotoTrainReport, error) {
	rep := PhotoTrainReport{Photos: map[string]int{}, Licenses: map[string]int{}}
	if opt.Tile == 0 {
		opt.Tile = DefaultPhotoTile
	}
	if opt.MaxBicubicPSNR == 0 {
		opt.MaxBicubicPSNR = DefaultPhotoMaxBicubicPSNR
	}
	if opt.Downscale == 0 {
		opt.Downscale = DefaultPhotoDownscale
	}
	if opt.Downscale < 1 {
		return rep, fmt.Errorf("prepare photos-train: downscale %d", opt.Downscale)
	}
	if opt.Tile < 64 {
		return rep, fmt.Errorf("prepare photos-train: tile %d is below 64", opt.Tile)
	}
	if opt.PlasmaRoot == "" && opt.MateRoot == "" {
		return rep, errors.New("prepare photos-train: no source package")
	}
	var srcs []photoSource
	if opt.PlasmaRoot != "" {
		s, err := plasmaSources(&rep, opt.PlasmaRoot, opt.PlasmaVersion)
		if err != nil {
			return rep, fmt.Errorf("prepare photos-train: %w", err)
		}
		srcs = append(srcs, s...)
	}
	if opt.MateRoot != "" {
		s, err := mateSources(&rep, opt.MateRoot, opt.MateVersion)
		if err != nil {
			return rep, fmt.Errorf("prepare photos-train: %w", err)
		}
		srcs = append(srcs, s...)
	}
	if len(srcs) == 0 {
		return rep, errors.New("prepare photos-train: no photograph found")
	}
	if err := os.Remove(filepath.Join(opt.Out, PhotoLicensesFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, err
	}
	for _, d := range []string{"train", "heldout"} {
		p := filepath.Join(opt.Out, d)
		if err := os.RemoveAll(p); err != nil {
			return rep, err
		}
		if err := os.MkdirAll(p, 0o755); err != nil {
			return rep, err
		}
	}
	var (
		mu    sync.Mutex
		wg    sync.WaitGroup
		errs  []error
		lines []PhotoLicense
	)
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for _, s := range srcs {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			written, px, flat, err := writePhoto(ctx, s, opt.Out, opt.Tile, opt.Downscale, opt.MaxBicubicPSNR)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			lines = append(lines, written...)
			rep.Photos[s.dec.Package]++
			rep.Licenses[s.lic.License]++
			if s.dec.HeldOut {
				rep.HeldOut++
				rep.HeldOutPixels += px
			} else {
				rep.TrainPhotos++
				rep.Train += len(written)
				rep.TrainPixels += px
				rep.Flat += flat
				if len(written) == 0 {
					rep.AllFlat = append(rep.AllFlat, s.dec.Package+" "+s.dec.Name)
				}
			}
		}()
	}
	wg.Wait()
	slices.Sort(rep.AllFlat)
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		return rep, fmt.Errorf("prepare photos-train: %w", err)
	}
	if err := WritePhotoLicenses(opt.Out, lines); err != nil {
		return rep, fmt.Errorf("prepare photos-train: %w", err)
	}
	if opt.Licenses != "" {
		for _, s := range srcs {
			if s.metadata == "" {
				continue
			}
			dst := filepath.Join(opt.Licenses, s.dec.Package, s.dec.Name+"."+filepath.Base(s.metadata))
			if err := copyPlain(s.metadata, dst); err != nil {
				return rep, fmt.Errorf("prepare photos-train: %w", err)
			}
		}
	}
	return rep, nil
}

// writePhoto decodes one photograph and writes it whole (held out) or as tiles
// (those with a bicubic ×2 Y PSNR under maxPSNR, if maxPSNR > 0), returning the
// licences lines of the written files, the pixels written and the tiles left out.
func writePhoto(ctx context.Context, s photoSource, out string, tile, down int, maxPSNR float64) ([]PhotoLicense, int64, int, error) {
	img, err := imageio.DecodeFile(s.path, imageio.DefaultLimits)
	if err != nil {
		return nil, 0, 0, err
	}
	if s.w > 0 && (img.W != s.w || img.H != s.h) {
		return nil, 0, 0, fmt.Errorf("%s: named %d×%d, decodes to %d×%d", s.path, s.w, s.h, img.W, img.H)
	}
	source := "Debian " + s.lic.Package + " " + s.lic.Version + ", " + s.lic.Source
	if down > 1 {
		w, h := img.W, img.H
		if img, err = metrics.Modcrop(img, down); err == nil {
			img, err = metrics.Imresize(img, 1/float64(down))
		}
		if err != nil {
			return nil, 0, 0, fmt.Errorf("%s: %w", s.path, err)
		}
		source += fmt.Sprintf(" (%d×%d), reduced ×1/%d by MATLAB bicubic to %d×%d", w, h, down, img.W, img.H)
	}
	stem := shortPackage(s.dec.Package) + "-" + s.dec.Name
	copyright := s.lic.Author + "; " + s.lic.License
	if s.dec.HeldOut {
		l := s.lic
		l.File = "heldout/" + stem + ".png"
		err := imageio.WritePNGFile(filepath.Join(out, filepath.FromSlash(l.File)), img,
			imageio.Text{Key: "Source", Value: latin1(source)},
			imageio.Text{Key: "Copyright", Value: latin1(copyright)})
		return []PhotoLicense{l}, int64(img.W) * int64(img.H), 0, err
	}
	var lines []PhotoLicense
	var px int64
	flat := 0
	for _, t := range TileGrid(img.W, img.H, tile) {
		if err := ctx.Err(); err != nil {
			return nil, 0, 0, err
		}
		c, err := img.Crop(t.X, t.Y, t.W, t.H)
		if err != nil {
			return nil, 0, 0, err
		}
		if maxPSNR > 0 {
			q, _, err := metrics.BicubicBaseline(c, 2)
			if err != nil {
				return nil, 0, 0, fmt.Errorf("%s tile r%dc%d: %w", s.path, t.Row, t.Col, err)
			}
			if q.PSNR >= maxPSNR {
				flat++
				continue
			}
		}
		l := s.lic
		l.File = fmt.Sprintf("train/%s-r%dc%d.png", stem, t.Row, t.Col)
		err = imageio.WritePNGFile(filepath.Join(out, filepath.FromSlash(l.File)), c,
			imageio.Text{Key: "Source", Value: latin1(fmt.Sprintf("%s, tile %d×%d at (%d, %d)", source, t.W, t.H, t.X, t.Y))},
			imageio.Text{Key: "Copyright", Value: latin1(copyright)})
		if err != nil {
			return nil, 0, 0, err
		}
		lines = append(lines, l)
		px += int64(t.W) * int64(t.H)
	}
	return lines, px, flat, nil
}

// Tile is one cell of TileGrid.
type Tile struct{ Row, Col, X, Y, W, H int }

// TileGrid cuts a w×h image into the fewest rows and columns whose cells are at most
// max×max, with the cell boundaries spread evenly (2560×1600 at 512 → 5×4 cells of
// 512×400). Every pixel is in exactly one cell.
func TileGrid(w, h, max int) []Tile {
	nx, ny := (w+max-1)/max, (h+max-1)/max
	var out []Tile
	for r := range ny {
		y0, y1 := r*h/ny, (r+1)*h/ny
		for c := range nx {
			x0, x1 := c*w/nx, (c+1)*w/nx
			out = append(out, Tile{Row: r, Col: c, X: x0, Y: y0, W: x1 - x0, H: y1 - y0})
		}
	}
	return out
}

func shortPackage(p string) string {
	switch p {
	case PlasmaPackage:
		return "plasma"
	case MatePackage:
		return "mate"
	}
	return p
}

// decisions returns the package's entries of PhotoDecisions by name.
func decisions(pkg string) map[string]PhotoDecision {
	m := map[string]PhotoDecision{}
	for _, d := range PhotoDecisions {
		if d.Package == pkg {
			m[d.Name] = d
		}
	}
	return m
}

// plasmaSources reads usr/share/wallpapers of an extracted plasma-workspace-wallpapers.
func plasmaSources(rep *PhotoTrainReport, root, version string) ([]photoSource, error) {
	base := filepath.Join(root, "usr", "share", "wallpapers")
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, err
	}
	dec := decisions(PlasmaPackage)
	seen := map[string]bool{}
	var out []photoSource
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		name := e.Name()
		seen[name] = true
		d, ok := dec[name]
		switch {
		case !ok:
			rep.Unreviewed = append(rep.Unreviewed, PlasmaPackage+" "+name)
			continue
		case !d.Keep:
			rep.LeftOut++
			continue
		}
		dir := filepath.Join(base, name)
		meta, lic, err := PlasmaMetadata(dir)
		if err != nil {
			return nil, err
		}
		img, w, h, err := largestImage(filepath.Join(dir, "contents", "images"))
		if err != nil {
			return nil, err
		}
		lic.Package, lic.Version = PlasmaPackage, version
		lic.Source = path.Join("usr/share/wallpapers", name, "contents/images", filepath.Base(img))
		out = append(out, photoSource{dec: d, path: img, lic: lic, metadata: meta, w: w, h: h})
	}
	for name, d := range dec {
		if d.Keep && !seen[name] {
			rep.Missing = append(rep.Missing, PlasmaPackage+" "+name)
		}
	}
	slices.Sort(rep.Missing)
	return out, nil
}

// PlasmaMetadata reads a KDE wallpaper folder's metadata.json (KPlugin Name,
// Authors, License) or, for older wallpapers, metadata.desktop (Name=,
// X-KDE-PluginInfo-Author/-Email/-License=), returning the file read and the
// wallpaper's name, author ("Name <email>", several joined by ", ") and licence
// exactly as written.
func PlasmaMetadata(dir string) (string, PhotoLicense, error) {
	var lic PhotoLicense
	if p := filepath.Join(dir, "metadata.json"); fileExists(p) {
		data, err := os.ReadFile(p)
		if err != nil {
			return "", lic, err
		}
		var m struct {
			KPlugin struct {
				Name    string
				License string
				Authors []struct{ Name, Email string }
			}
		}
		if err := json.Unmarshal(data, &m); err != nil {
			return "", lic, fmt.Errorf("%s: %w", p, err)
		}
		var authors []string
		for _, a := range m.KPlugin.Authors {
			authors = append(authors, person(a.Name, a.Email))
		}
		lic.Wallpaper, lic.License, lic.Author = m.KPlugin.Name, m.KPlugin.License, strings.Join(authors, ", ")
		return p, lic, checkLicense(p, lic)
	}
	p := filepath.Join(dir, "metadata.desktop")
	f, err := os.Open(p)
	if err != nil {
		return "", lic, fmt.Errorf("%s has neither metadata.json nor metadata.desktop", dir)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	section := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "[") {
			section = line
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && section == "[Desktop Entry]" {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return "", lic, err
	}
	lic.Wallpaper, lic.License = kv["Name"], kv["X-KDE-PluginInfo-License"]
	lic.Author = person(kv["X-KDE-PluginInfo-Author"], kv["X-KDE-PluginInfo-Email"])
	return p, lic, checkLicense(p, lic)
}

func person(name, email string) string {
	if email == "" {
		return name
	}
	return name + " <" + email + ">"
}

func checkLicense(p string, l PhotoLicense) error {
	if l.Wallpaper == "" || l.Author == "" || l.License == "" {
		return fmt.Errorf("%s: name %q, author %q, licence %q: all three are needed", p, l.Wallpaper, l.Author, l.License)
	}
	return nil
}

var sizeName = regexp.MustCompile(`^(\d+)x(\d+)\.(jpg|jpeg|png)$`)

// largestImage returns the regular file WxH.ext of dir with the most pixels by its
// name (symlinks, the packages' other sizes, are not followed).
func largestImage(dir string) (string, int, int, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", 0, 0, err
	}
	best, bw, bh := "", 0, 0
	for _, e := range ents {
		if e.Type()&fs.ModeType != 0 { // symlink, folder…
			continue
		}
		m := sizeName.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		w, _ := strconv.Atoi(m[1])
		h, _ := strconv.Atoi(m[2])
		if w*h > bw*bh {
			best, bw, bh = filepath.Join(dir, e.Name()), w, h
		}
	}
	if best == "" {
		return "", 0, 0, fmt.Errorf("%s: no WxH image file", dir)
	}
	return best, bw, bh, nil
}

// mateSources reads backgrounds/mate/nature of an extracted mate-backgrounds; the
// authors and licence come from its Debian copyright file (Dep5Lookup), the names
// from mate-background-properties/mate-nature.xml.
func mateSources(rep *PhotoTrainReport, root, version string) ([]photoSource, error) {
	share := filepath.Join(root, "usr", "share")
	copyright, err := os.ReadFile(filepath.Join(share, "doc", MatePackage, "copyright"))
	if err != nil {
		return nil, err
	}
	stanzas := ParseDep5(string(copyright))
	names, err := mateNames(filepath.Join(share, "mate-background-properties", "mate-nature.xml"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(share, "backgrounds", "mate", "nature")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	dec := decisions(MatePackage)
	seen := map[string]bool{}
	var out []photoSource
	for _, e := range ents {
		ext := strings.ToLower(filepath.Ext(e.Name()))
		if e.Type()&fs.ModeType != 0 || ext != ".jpg" && ext != ".jpeg" && ext != ".png" {
			continue
		}
		stem := strings.TrimSuffix(e.Name(), filepath.Ext(e.Name()))
		seen[stem] = true
		d, ok := dec[stem]
		switch {
		case !ok:
			rep.Unreviewed = append(rep.Unreviewed, MatePackage+" nature/"+e.Name())
			continue
		case !d.Keep:
			rep.LeftOut++
			continue
		}
		st, ok := Dep5Lookup(stanzas, "nature/"+e.Name())
		if !ok || st.Copyright == "" || st.License == "" {
			return nil, fmt.Errorf("%s copyright: no Copyright/License for nature/%s", MatePackage, e.Name())
		}
		name := names[e.Name()]
		if name == "" {
			name = stem
		}
		out = append(out, photoSource{dec: d, path: filepath.Join(dir, e.Name()), lic: PhotoLicense{
			Package: MatePackage, Version: version, Wallpaper: name, Author: st.Copyright, License: st.License,
			Source: "usr/share/backgrounds/mate/nature/" + e.Name(),
		}})
	}
	for name, d := range dec {
		if d.Keep && !seen[name] {
			rep.Missing = append(rep.Missing, MatePackage+" "+name)
		}
	}
	slices.Sort(rep.Missing)
	return out, nil
}

// mateNames maps a background's file name to its untranslated <name> in a
// mate-background-properties list.
func mateNames(p string) (map[string]string, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, err
	}
	var list struct {
		Wallpapers []struct {
			Names []struct {
				Lang string `xml:"http://www.w3.org/XML/1998/namespace lang,attr"`
				Text string `xml:",chardata"`
			} `xml:"name"`
			Filename string `xml:"filename"`
		} `xml:"wallpaper"`
	}
	dec := xml.NewDecoder(strings.NewReader(string(data)))
	dec.Strict = false // the list has a DOCTYPE
	if err := dec.Decode(&list); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	out := map[string]string{}
	for _, w := range list.Wallpapers {
		for _, n := range w.Names {
			if n.Lang == "" {
				out[path.Base(strings.TrimSpace(w.Filename))] = strings.TrimSpace(n.Text)
				break
			}
		}
	}
	return out, nil
}

// Dep5Stanza is one Files paragraph of a machine-readable Debian copyright file.
type Dep5Stanza struct {
	Files     []string // glob patterns
	Copyright string   // the Copyright field's lines, trimmed, joined by "; "
	License   string   // the License field's first line (the licence's short name)
}

var blankLine = regexp.MustCompile(`\n[ \t]*\n`)

// ParseDep5 reads the Files paragraphs of a Debian copyright file
// (copyright-format 1.0): fields "Name: value" with continuation lines that start
// with white space, paragraphs separated by blank lines.
func ParseDep5(text string) []Dep5Stanza {
	var out []Dep5Stanza
	for _, para := range blankLine.Split(strings.ReplaceAll(text, "\r\n", "\n"), -1) {
		fields := map[string][]string{}
		key := ""
		for _, line := range strings.Split(para, "\n") {
			if line == "" {
				continue
			}
			if line[0] == ' ' || line[0] == '\t' {
				if key != "" {
					fields[key] = append(fields[key], strings.TrimSpace(line))
				}
				continue
			}
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				key = ""
				continue
			}
			key = strings.TrimSpace(k)
			fields[key] = append(fields[key], strings.TrimSpace(v))
		}
		files, ok := fields["Files"]
		if !ok {
			continue
		}
		st := Dep5Stanza{Files: strings.Fields(strings.Join(files, " "))}
		var cr []string
		for _, c := range fields["Copyright"] {
			if c != "" {
				cr = append(cr, c)
			}
		}
		st.Copyright = strings.Join(cr, "; ")
		if l := fields["License"]; len(l) > 0 {
			st.License = l[0]
		}
		out = append(out, st)
	}
	return out
}

// Dep5Lookup finds the paragraph that covers file (a path relative to the source
// root): the last one with a matching pattern, as copyright-format 1.0 says. In a
// pattern '*' matches any run of characters, '/' included, and '?' any one.
func Dep5Lookup(stanzas []Dep5Stanza, file string) (Dep5Stanza, bool) {
	var found Dep5Stanza
	ok := false
	for _, st := range stanzas {
		for _, pat := range st.Files {
			if dep5Match(pat, file) {
				found, ok = st, true
				break
			}
		}
	}
	return found, ok
}

func dep5Match(pat, file string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pat {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	m, err := regexp.MatchString(re.String(), file)
	return err == nil && m
}

// WritePhotoLicenses writes root/licenses.tsv, sorted by file, tab-separated, with
// a header line (photoLicensesHeader).
func WritePhotoLicenses(root string, lines []PhotoLicense) error {
	lines = slices.Clone(lines)
	slices.SortFunc(lines, func(a, b PhotoLicense) int { return strings.Compare(a.File, b.File) })
	var b strings.Builder
	b.WriteString(photoLicensesHeader + "\n")
	for _, l := range lines {
		f := []string{l.File, l.Package, l.Version, l.Wallpaper, l.Author, l.License, l.Source}
		for i, s := range f {
			if strings.ContainsAny(s, "\t\n") {
				return fmt.Errorf("licenses.tsv: field %q of %s has a tab or newline", s, l.File)
			}
			if i > 0 {
				b.WriteByte('\t')
			}
			b.WriteString(s)
		}
		b.WriteByte('\n')
	}
	tmp := filepath.Join(root, PhotoLicensesFile+".tmp")
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(root, PhotoLicensesFile))
}

// ReadPhotoLicenses reads root/licenses.tsv back.
func ReadPhotoLicenses(root string) ([]PhotoLicense, error) {
	data, err := os.ReadFile(filepath.Join(root, PhotoLicensesFile))
	if err != nil {
		return nil, err
	}
	rows := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(rows) == 0 || rows[0] != photoLicensesHeader {
		return nil, fmt.Errorf("%s: header is not %q", PhotoLicensesFile, photoLicensesHeader)
	}
	var out []PhotoLicense
	for i, r := range rows[1:] {
		f := strings.Split(r, "\t")
		if len(f) != 7 {
			return nil, fmt.Errorf("%s line %d: %d fields, want 7", PhotoLicensesFile, i+2, len(f))
		}
		out = append(out, PhotoLicense{f[0], f[1], f[2], f[3], f[4], f[5], f[6]})
	}
	return out, nil
}

// latin1 replaces what a PNG tEXt chunk cannot hold (runes above U+00FF) by '?';
// licenses.tsv keeps the UTF-8 original.
func latin1(s string) string {
	return strings.Map(func(r rune) rune {
		if r > 0xff || r == 0 {
			return '?'
		}
		return r
	}, s)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func copyPlain(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
