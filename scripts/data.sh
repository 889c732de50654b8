#!/usr/bin/env bash
# Fetches the datasets with the ordinary package clients (no other network access),
# verifies them against scripts/data.sha256 and prepares data/ (git-ignored):
#   data/noto128/{train,heldout}/*.png    Noto Color Emoji, 128×128   (GAN training)
#   data/fluent256/{train,heldout}/*.png  Fluent Emoji 3D, 256×256    (SR training)
#   data/{noto128,fluent256}/labels.tsv   Unicode emoji group/subgroup/name per image
#   data/photos/*.png                     scikit-image photos          (SR evaluation)
#   data/photos-train/{train,heldout}     photographs from Debian's KDE and MATE wallpaper
#                                         packages (photo SR training; train/ in ≤256² tiles,
#                                         heldout/ whole), licenses.tsv: author and licence per file
#   data/licenses/                        the sources' licence files
# The emoji are named and labelled by Unicode's emoji-test.txt (Debian unicode-data).
# Nothing is installed: `apt-get download` + `dpkg-deb -x`, `npm pack`.
# Idempotent: verified downloads are reused. See docs/data.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
sums=$root/scripts/data.sha256
FLUENT_PKG=@lobehub/fluent-emoji-3d
FLUENT_VERSION=1.1.0
start=$(date +%s)

need() { # TOOL APT_PACKAGE: install the client when root, else say what to run
  command -v "$1" >/dev/null && return
  if [ "$(id -u)" = 0 ]; then
    echo "data: installing $2 (for $1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  else
    echo "data: $1 is missing; run: sudo apt-get install -y $2" >&2; exit 1
  fi
}
need npm npm
need dpkg-deb dpkg
need sha256sum coreutils

mkdir -p data/downloads data/raw data/licenses
cd data

recorded() { grep -vE '^\s*(#|$)' "$sums" | awk -v p="$1" '$2 == p {print $1}'; }
sha() { sha256sum "$1" | awk '{print $1}'; }
warn() { echo "data: WARNING: $*" >&2; }

# check FILE STRICT: compares FILE with its recorded hash. STRICT=1: mismatch is an
# error; 0: a warning. Returns 1 if the file has no recorded hash.
check() {
  local want; want=$(recorded "$1")
  [ -n "$want" ] || return 1
  local got; got=$(sha "$1")
  if [ "$got" != "$want" ]; then
    if [ "$2" = 1 ]; then echo "data: sha256 mismatch for $1: got $got, want $want" >&2; exit 1; fi
    warn "$1 differs from the recorded sha256 (got $got); results may differ from docs/data.md"
  fi
  return 0
}

# --- npm: pinned version, strict hash
tgz=downloads/lobehub-fluent-emoji-3d-$FLUENT_VERSION.tgz
if [ ! -f "$tgz" ]; then
  echo "data: npm pack $FLUENT_PKG@$FLUENT_VERSION"
  (cd downloads && npm pack --silent "$FLUENT_PKG@$FLUENT_VERSION" >/dev/null)
fi
check "$tgz" 1 || { echo "data: no recorded sha256 for $tgz" >&2; exit 1; }

# --- Debian: whatever version the archive has now; strict for the recorded version
fetch_deb() { # PKG → prints the .deb path
  local pkg=$1 f
  f=$(ls downloads/"${pkg}"_*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$f" ]; then
    echo "data: apt-get download $pkg" >&2
    if ! (cd downloads && apt-get download -q=2 -o APT::Sandbox::User=root "$pkg" >/dev/null 2>&1 ||
          apt-get download -q=2 "$pkg" >/dev/null); then
      echo "data: apt-get download $pkg failed (run 'apt-get update' first?)" >&2; exit 1
    fi
    f=$(ls downloads/"${pkg}"_*.deb | head -n1)
  fi
  echo "$f"
}
declare -A deb_recorded
for pkg in fonts-noto-color-emoji python3-skimage unicode-data plasma-workspace-wallpapers mate-backgrounds; do
  f=$(fetch_deb "$pkg")
  if check "$f" 1; then
    deb_recorded[$pkg]=1
  else
    deb_recorded[$pkg]=0
    warn "$f is not the recorded version ($(grep -o "downloads/${pkg}_[^ ]*" "$sums")); upstream changed, checking the files used instead"
  fi
  case $pkg in
    fonts-noto-color-emoji) dest=raw/noto ;; python3-skimage) dest=raw/skimage ;; unicode-data) dest=raw/unicode ;;
    plasma-workspace-wallpapers) dest=raw/plasma-wallpapers ;; mate-backgrounds) dest=raw/mate-backgrounds ;;
  esac
  stamp=$dest/.from
  if [ "$(cat "$stamp" 2>/dev/null)" != "$(basename "$f")" ]; then
    rm -rf "$dest" && mkdir -p "$dest"
    dpkg-deb -x "$f" "$dest"
    basename "$f" > "$stamp"
  fi
done
strict_noto=${deb_recorded[fonts-noto-color-emoji]}
strict_sk=${deb_recorded[python3-skimage]}
strict_uni=${deb_recorded[unicode-data]}
strict_plasma=${deb_recorded[plasma-workspace-wallpapers]}
strict_mate=${deb_recorded[mate-backgrounds]}
font=raw/noto/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
skdata=raw/skimage/usr/lib/python3/dist-packages/skimage/data
emojitest=raw/unicode/usr/share/unicode/emoji/emoji-test.txt
check "$font" "$strict_noto"
check "$emojitest" "$strict_uni" || { echo "data: no recorded sha256 for $emojitest" >&2; exit 1; }
for p in astronaut.png camera.png chelsea.png coffee.png rocket.jpg hubble_deep_field.jpg; do
  check "$skdata/$p" "$strict_sk"
done
# The wallpaper files used (the photographs kept, their metadata, the copyright
# files) are listed in data.sha256; one a new package version lacks is an error
# for the recorded version and a warning otherwise (prepare then reports it).
for f in $(grep -vE '^\s*(#|$)' "$sums" | awk '$2 ~ /^raw\/(plasma-wallpapers|mate-backgrounds)\// {print $2}'); do
  case $f in raw/plasma-wallpapers/*) strict=$strict_plasma ;; *) strict=$strict_mate ;; esac
  if [ -f "$f" ]; then
    check "$f" "$strict"
  elif [ "$strict" = 1 ]; then
    echo "data: $f is missing from the recorded package" >&2; exit 1
  else
    warn "$f is not in this version of the package"
  fi
done

if [ ! -d raw/fluent/package/assets ] || [ "$(cat raw/fluent/.from 2>/dev/null)" != "$(basename "$tgz")" ]; then
  rm -rf raw/fluent && mkdir -p raw/fluent
  tar -xzf "$tgz" -C raw/fluent
  basename "$tgz" > raw/fluent/.from
fi

# --- licences next to the data
cp raw/noto/usr/share/doc/fonts-noto-color-emoji/copyright licenses/noto-color-emoji.copyright
cp raw/skimage/usr/share/doc/python3-skimage/copyright licenses/python3-skimage.copyright
cp raw/unicode/usr/share/doc/unicode-data/copyright licenses/unicode-data.copyright
cp raw/fluent/package/package.json licenses/fluent-emoji-3d.package.json
cp raw/fluent/package/README.md licenses/fluent-emoji-3d.README.md
cp raw/plasma-wallpapers/usr/share/doc/plasma-workspace-wallpapers/copyright licenses/plasma-workspace-wallpapers.copyright
cp raw/mate-backgrounds/usr/share/doc/mate-backgrounds/copyright licenses/mate-backgrounds.copyright
# The wallpapers' licences are named, not included, by their packages: the texts
# come from Debian's base-files (/usr/share/common-licenses), when present.
for l in LGPL-3 GPL-2 GPL-3; do
  if [ -f /usr/share/common-licenses/$l ]; then cp /usr/share/common-licenses/$l licenses/$l.txt; fi
done

deb_version() { basename "$1" | cut -d_ -f2 | sed 's/%3a/:/'; } # the epoch's ':' is %3a in file names
noto_deb=$(ls downloads/fonts-noto-color-emoji_*.deb | head -n1)
sk_deb=$(ls downloads/python3-skimage_*.deb | head -n1)
plasma_deb=$(ls downloads/plasma-workspace-wallpapers_*.deb | head -n1)
mate_deb=$(ls downloads/mate-backgrounds_*.deb | head -n1)

# --- convert (pure Go)
prep=$root/.cache/bin/hirez-prepare-data
(cd "$root/engine" && go build -trimpath -o "$prep" ./dataset/cmd/prepare)
# The output is a function of the converter and its inputs: skip when neither changed.
stamp=$( { sha "$prep"; sha "$font"; sha "$emojitest"; cat raw/fluent/.from; sha256sum "$skdata"/*.png "$skdata"/*.jpg; } | sha256sum | awk '{print $1}')
if [ "$(cat .prepared 2>/dev/null)" = "$stamp" ]; then
  echo "data: data/noto128, data/fluent256, data/photos are up to date"
else
  echo "data: preparing data/noto128, data/fluent256, data/photos"
  rm -f .prepared
  "$prep" -out . -emoji-test "$emojitest" \
    -noto "$font" -noto-version "$(deb_version "$noto_deb")" \
    -fluent raw/fluent/package/assets -fluent-version "$FLUENT_VERSION" \
    -photos "$skdata" -photos-version "$(deb_version "$sk_deb")"
  echo "$stamp" > .prepared
fi
# Photo SR training set: its own stamp, so the emoji sets are not redone for it.
stamp=$( { sha "$prep"; cat raw/plasma-wallpapers/.from raw/mate-backgrounds/.from; } | sha256sum | awk '{print $1}')
if [ "$(cat .prepared-photos-train 2>/dev/null)" = "$stamp" ]; then
  echo "data: data/photos-train is up to date"
else
  echo "data: preparing data/photos-train"
  rm -f .prepared-photos-train
  "$prep" -out . \
    -plasma raw/plasma-wallpapers -plasma-version "$(deb_version "$plasma_deb")" \
    -mate raw/mate-backgrounds -mate-version "$(deb_version "$mate_deb")"
  echo "$stamp" > .prepared-photos-train
fi

echo "data: sha256 of the downloads:"
(cd downloads && sha256sum ./*.deb ./*.tgz | sed 's#  \./#  downloads/#' | sed 's/^/  /')
for d in noto128/train noto128/heldout fluent256/train fluent256/heldout photos photos-train/train photos-train/heldout; do
  printf '  %-20s %5d png\n' "$d" "$(find "$d" -name '*.png' | wc -l)"
done
for d in noto128 fluent256; do
  printf '  %-20s %5d labels\n' "$d/labels.tsv" "$(( $(wc -l < "$d/labels.tsv") - 1 ))"
done
printf '  %-20s %5d files from %d photographs (%s)\n' photos-train/licenses.tsv \
  "$(( $(wc -l < photos-train/licenses.tsv) - 1 ))" \
  "$(tail -n +2 photos-train/licenses.tsv | cut -f2,4 | sort -u | wc -l)" \
  "$(tail -n +2 photos-train/licenses.tsv | cut -f2,4,6 | sort -u | cut -f3 | sort | uniq -c | awk '{printf "%s%s %d", (NR>1?", ":""), $2, $1}')"
echo "data: done in $(( $(date +%s) - start ))s"
