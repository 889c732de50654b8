package app

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hirez-ml/hirez/engine/backend/choose"
	"github.com/hirez-ml/hirez/engine/dataset"
	"github.com/hirez-ml/hirez/engine/imageio"
	"github.com/hirez-ml/hirez/engine/model"
	"github.com/hirez-ml/hirez/engine/train"
)

func trainLocalCommand() Command {
	return Command{
		Name:    "train-local",
		Summary: "train a DCGAN, an Up Sampler or an SR model on this machine",
		Run:     runTrainLocal,
	}
}

// trainFlags are the flags train-local shares with the commands that train.
type trainFlags struct {
	backend, recipe, loss     string
	augment                   string
	lrG, lrD, smooth, ema, lr float64
	decay                     float64
	batch, patch              int
	contentWeight             float64
	threads                   int
	set                       map[string]bool
}

func (t *trainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&t.backend, "backend", "", "backend: "+choose.Describe(true))
	fs.IntVar(&t.threads, "threads", 0, "CPU threads for the cpu backend (0 = all)")
	fs.StringVar(&t.recipe, "recipe", "stable", "GAN recipe: study (DCGAN paper, no stabilisers), stable (TTUR, label smoothing, EMA) or "+
		"smalldata (DiffAugment color,translation,cutout; hinge; D 4e-4, G 1e-4, Adam β 0/0.9; EMA; pair it with --disc dcgan-d-sn)")
	fs.StringVar(&t.augment, "augment", "", "gan/multistage: DiffAugment on every image D sees, a comma-separated list of translation, cutout, color "+
		"applied in that order, or none (default: the recipe's; only smalldata has one)")
	fs.StringVar(&t.loss, "loss", "", "GAN loss: bce or hinge (default: the recipe's)")
	fs.Float64Var(&t.lrG, "lr-g", 0, "G's Adam learning rate (default: the recipe's)")
	fs.Float64Var(&t.lrD, "lr-d", 0, "D's Adam learning rate (default: the recipe's)")
	fs.Float64Var(&t.smooth, "smooth", 0, "one-sided label smoothing for D's real target (default: the recipe's)")
	fs.Float64Var(&t.ema, "ema", 0, "EMA decay of G, 0 = off (default: the recipe's)")
	fs.IntVar(&t.batch, "batch", 0, "batch size (default 64 for GANs, 32 for SR)")
	fs.Float64Var(&t.contentWeight, "content-weight", 10, "multistage: weight of the MSE content term (0 = adversarial only)")
	fs.IntVar(&t.patch, "patch", 48, "sr: HR patch side")
	fs.Float64Var(&t.lr, "lr", 1e-3, "sr: Adam learning rate")
	fs.Float64Var(&t.decay, "lr-decay", 0, "sr: final fraction of the run over which the learning rate falls linearly to 0 (0 = constant)")
}

func (t *trainFlags) gan() (train.Recipe, error) {
	var r train.Recipe
	switch t.recipe {
	case "study":
		r = train.DefaultRecipe()
	case "stable":
		r = train.StableRecipe()
	case "smalldata":
		r = train.SmallDataRecipe()
	default:
		return r, usagef("--recipe %q: want study, stable or smalldata", t.recipe)
	}
	if t.set["augment"] {
		r.Augment = t.augment
		if t.augment == "none" {
			r.Augment = ""
		}
		if _, err := train.ParseAugment(r.Augment); err != nil {
			return r, usagef("--augment: %v", err)
		}
	}
	if t.set["loss"] {
		r.Loss = train.Loss(t.loss)
	}
	if t.set["lr-g"] {
		r.LRG = float32(t.lrG)
	}
	if t.set["lr-d"] {
		r.LRD = float32(t.lrD)
	}
	if t.set["smooth"] {
		r.LabelSmoothing = float32(t.smooth)
	}
	if t.set["ema"] {
		r.EMADecay = float32(t.ema)
	}
	if t.batch > 0 {
		r.Batch = t.batch
	}
	return r, nil
}

func runTrainLocal(ctx context.Context, env Env, args []string) error {
	fs := newFlags(env, "train-local", "--kind gan|multistage|sr|features --data DIR --out DIR (--steps N | --epochs N | --budget D) [flags]")
	kind := fs.String("kind", "", "what to train: gan (DCGAN), multistage (Up Sampler h→2h), sr (super-resolution, MSE) or features (the evaluation's feature extractor)")
	preset := fs.String("preset", "", "network preset (defaults: dcgan-g-stable, upsampler-stable, srcnn-classic)")
	disc := fs.String("disc", "", "discriminator preset for gan/multistage (default dcgan-d-stable; dcgan-d-sn: spectral norm, no BatchNorm)")
	side := fs.Int("side", 32, "gan: image side h; multistage: input side h (output 2h)")
	data := fs.String("data", "", "folder of training images")
	out := fs.String("out", "", "run folder: checkpoint, weights, sample grids")
	name := fs.String("name", "", "file name of the weights (default generator, upsampler or sr)")
	steps := fs.Int("steps", 0, "stop after this many steps")
	epochs := fs.Int("epochs", 0, "stop after this many epochs")
	budget := fs.Duration("budget", 0, "stop after this much training time (e.g. 15m)")
	resume := fs.Bool("resume", false, "continue from the checkpoint in --out")
	seed := fs.Uint64("seed", 1, "seed of weights, latents, shuffling")
	sampleEvery := fs.Int("sample-every", 500, "steps between sample grids (0 = only the final one)")
	ckptEvery := fs.Int("checkpoint-every", 500, "steps between checkpoints (0 = only at the end)")
	swdEvery := fs.Int("swd-every", 0, "gan: steps between SWD evaluations during training (0 = none)")
	swdData := fs.String("swd-data", "data/noto128/heldout", "gan: real images for --swd-every (at least 2×--swd-n)")
	kidEvery := fs.Int("kid-every", 0, "gan: steps between feature-space scores (KID, precision/recall, copies) during training, keeping the lowest-KID snapshot as best.safetensors and the curve in kid.tsv and kid.png (0 = none)")
	kidData := fs.String("kid-data", "data/noto128/heldout", "gan: held-out images for --kid-every")
	kidN := fs.Int("kid-n", 256, "gan: generated images per --kid-every evaluation (fixed latents 0…n−1)")
	featPath := fs.String("features", DefaultFeatures, "gan: feature extractor for --kid-every")
	var groups multiFlag
	fs.Var(&groups, "group", "train on this Unicode emoji group only (repeat for more; by the set's labels.tsv)")
	conditional := fs.Bool("conditional", false, "gan: class-conditional over the --group groups (two or more), in the order given: G takes the group's one-hot, D is a projection discriminator, and the served model draws the group a request's label names")
	labelBy := fs.String("labels", "subgroup", "features: classify by the Unicode emoji subgroup or group (from the set's labels.tsv)")
	swdN := fs.Int("swd-n", 239, "gan: images per set for --swd-every (fixed latents 0…n−1, the first n real images)")
	var tf trainFlags
	tf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	tf.set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { tf.set[f.Name] = true })
	switch {
	case *kind == "":
		return usagef("--kind is required (gan, multistage, sr or features)")
	case *data == "":
		return usagef("--data is required (a folder of images, e.g. data/noto128/train)")
	case *out == "":
		return usagef("--out is required (a folder for the checkpoint and weights)")
	case *kidEvery < 0 || *kidN < 0:
		return usagef("--kid-every %d, --kid-n %d: want 0 or more", *kidEvery, *kidN)
	case *conditional && (*kind != "gan" || len(groups) < 2):
		return usagef("--conditional is for --kind gan with two or more --group flags (the classes, in order)")
	case *steps == 0 && *epochs == 0 && *budget == 0:
		return usagef("set --steps, --epochs or --budget")
	}
	if _, err := os.Stat(*data); err != nil {
		return usagef("--data: %v (run 'make data' to fetch the datasets)", err)
	}
	b, err := choose.OpenWith(tf.backend, choose.Options{Threads: tf.threads, Training: true})
	if err != nil {
		return usagef("%v", err)
	}
	defer b.Close()
	pr := newProgress(env.Stdout, *kind)
	samples := filepath.Join(*out, "samples")
	o := train.Options{
		Backend: b, Data: *data, Out: *out, Name: *name,
		Steps: *steps, Epochs: *epochs, Budget: *budget, Seed: *seed, Resume: *resume,
		CheckpointEvery: *ckptEvery, SampleEvery: *sampleEvery,
		OnProgress: pr.update,
		OnSample: func(s train.Sample) {
			file := fmt.Sprintf("step-%07d.png", s.Step)
			if s.Final {
				file = "final.png"
			}
			if err := os.MkdirAll(samples, 0o755); err == nil {
				_ = imageio.WritePNGFile(filepath.Join(samples, file), s.Grid) // samples are a convenience
			}
		},
		Meta:   map[string]string{"hirez.train.data": *data},
		Groups: groups,
	}
	if len(groups) > 0 {
		o.Meta[model.MetaTrainGroups] = strings.Join(groups, ", ")
	}
	start := time.Now()
	var res train.Result
	switch *kind {
	case "gan":
		r, err := tf.gan()
		if err != nil {
			return err
		}
		c := train.GANConfig{Generator: *preset, Discriminator: *disc, Side: *side, Recipe: r}
		if *conditional {
			c.Classes = groups
		}
		if *swdEvery > 0 {
			if _, err := os.Stat(*swdData); err != nil {
				return usagef("--swd-data: %v", err)
			}
			c.SWD = &train.SWDProbe{Every: *swdEvery, Data: *swdData, N: *swdN, OnEval: func(p train.SWDPoint) {
				pr.done() // a line of its own, not inside a bar being redrawn
				fmt.Fprintf(env.Stdout, "swd step %d: %.2f (floor %.2f, %d images per set; per level %s)\n", p.Step, p.SWD.Mean, p.Floor.Mean, p.N, p.SWD)
			}}
		}
		if *kidEvery > 0 {
			if _, err := os.Stat(*featPath); err != nil {
				return usagef("--features: %v (make models trains the extractor)", err)
			}
			c.Features = &train.FeatureProbe{Every: *kidEvery, Extractor: *featPath, Heldout: *kidData, Train: *data, Groups: groups, N: *kidN,
				Best: filepath.Join(*out, "best.safetensors"), OnEval: func(p train.FeaturePoint) {
					pr.done()
					mark := ""
					if p.Best {
						mark = " (best so far: best.safetensors)"
					}
					fmt.Fprintf(env.Stdout, "kid step %d: %v%s\n", p.Step, p.Score, mark)
					if err := recordCurve(*out, p.Step, pr.elapsed, p.Score); err != nil {
						fmt.Fprintf(env.Stderr, "train-local: feature curve: %v\n", err) // a convenience: the run goes on
					}
				}}
		}
		res, err = train.GAN(ctx, c, o)
		pr.done()
		if err != nil {
			return err
		}
	case "multistage":
		r, err := tf.gan()
		if err != nil {
			return err
		}
		res, err = train.MultiStage(ctx, train.MultiStageConfig{Upsampler: *preset, Discriminator: *disc, Side: *side, Recipe: r, ContentWeight: float32(tf.contentWeight)}, o)
		pr.done()
		if err != nil {
			return err
		}
	case "features":
		c, err := featuresConfig(*data, *labelBy, *preset, tf)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "features: %d classes (Unicode %s) over the images of %s\n", len(c.Classes), *labelBy, *data)
		res, err = train.Features(ctx, c, o)
		pr.done()
		if err != nil {
			return err
		}
	case "sr":
		res, err = train.SR(ctx, train.SRConfig{Preset: *preset, Patch: tf.patch, Batch: tf.batch, LR: float32(tf.lr), Decay: float32(tf.decay)}, o)
		pr.done()
		if err != nil {
			return err
		}
	default:
		return usagef("--kind %q: want gan, multistage, sr or features", *kind)
	}
	fmt.Fprintf(env.Stdout, "trained %d steps (epoch %d) in %s (this run %s)\nweights: %s\ncheckpoint: %s\nsamples: %s\n",
		res.Steps, res.Epoch, res.Elapsed.Round(time.Second), time.Since(start).Round(time.Second), res.Weights, res.Checkpoint, samples)
	return nil
}

// featuresConfig labels the images of data by the set's labels.tsv: the classes
// are the subgroups (or groups) its images have, sorted.
func featuresConfig(data, by, preset string, tf trainFlags) (train.FeaturesConfig, error) {
	if by != "subgroup" && by != "group" {
		return train.FeaturesConfig{}, usagef("--labels %q: want subgroup or group", by)
	}
	_, of, err := dataset.LabelsFor(data)
	if err != nil {
		return train.FeaturesConfig{}, usagef("%v", err)
	}
	label := func(f string) (string, bool) {
		l, ok := of(f)
		if by == "group" || l.Subgroup == "" {
			return l.Group, ok
		}
		return l.Subgroup, ok
	}
	l, err := dataset.NewLoader(dataset.Options{Dir: data, Size: 1, BatchSize: 1})
	if err != nil {
		return train.FeaturesConfig{}, err
	}
	defer l.Close()
	seen := map[string]bool{}
	for _, f := range l.Files() {
		name, ok := label(f)
		if !ok {
			return train.FeaturesConfig{}, fmt.Errorf("%s is not in the labels file (run 'make data' again)", f)
		}
		seen[name] = true
	}
	c := train.FeaturesConfig{Preset: preset, Classes: slices.Sorted(maps.Keys(seen)), Label: label}
	if tf.set["batch"] {
		c.Batch = tf.batch
	}
	if tf.set["lr"] {
		c.LR = float32(tf.lr)
	}
	return c, nil
}
