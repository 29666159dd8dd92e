#!/usr/bin/env bash
# Builds the local base image for the service images without any registry: a root filesystem made of
# the host's own Debian packages (Python 3.11 and the libraries it links), imported with `docker import`.
#
#   scripts/build-base-image.sh [IMAGE [EXTRA_PACKAGE ...]]   default IMAGE: canary/python:3.11
#
# Extra Debian packages (e.g. `nginx nginx-common` for an NGINX image) are installed on the host if
# absent and copied in the same way.
# Idempotent: an image whose label canary-harness.base-hash matches the package list and versions is
# kept as it is. Needs root (dpkg files are read, a rootfs is assembled) and a running Docker engine.
set -euo pipefail
image=${1:-canary/python:3.11}
shift || true
docker_cli=${DOCKER:-docker}

packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11-venv python3-pip-whl
          python3-setuptools-whl libc6 libssl3 libffi8 libgcc-s1 zlib1g libexpat1 dash coreutils libstdc++6
          libbz2-1.0 liblzma5 libsqlite3-0 libuuid1 libcrypt1 libtirpc3 libncursesw6 libtinfo6 libreadline8
          libdb5.3 libgssapi-krb5-2 libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1
          libnsl2 libzstd1 libgpm2 libselinux1 libpcre2-8-0 ca-certificates "$@")

missing=()
for pkg in "${packages[@]}"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The content hash: package names with their installed versions. Same host packages -> same image.
hash=$(for pkg in "${packages[@]}"; do dpkg-query -W -f='${Package}=${Version}\n' "$pkg"; done | sha256sum | cut -c1-16)
current=$("$docker_cli" image inspect -f '{{ index .Config.Labels "canary-harness.base-hash" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  echo "base image $image is up to date ($hash)"
  exit 0
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs"/usr/bin "$rootfs"/usr/sbin "$rootfs"/usr/lib "$rootfs"/usr/lib64 \
         "$rootfs"/etc/ssl/certs "$rootfs"/tmp "$rootfs"/var/tmp "$rootfs"/root "$rootfs"/opt
# The usr-merge links Debian 12 expects.
for dir in bin sbin lib lib64; do ln -s "usr/$dir" "$rootfs/$dir"; done
chmod 1777 "$rootfs"/tmp "$rootfs"/var/tmp

# Every regular file and link of each package, copied with its path (directories made as needed).
for pkg in "${packages[@]}"; do dpkg -L "$pkg"; done | sort -u | while read -r path; do
  [ -f "$path" ] || [ -L "$path" ] || continue
  printf '%s\n' "${path#/}"
done > "$work/files"
tar -C / --no-recursion -cf - -T "$work/files" 2>/dev/null | tar -C "$rootfs" --keep-directory-symlink -xf -

# Every shared library a binary of the rootfs needs (its ELF NEEDED entries) but the rootfs lacks is
# copied from the host, until nothing is missing. (Host `ldd` would resolve them against the host's own
# /usr/lib and never report them missing.)
for _ in 1 2 3 4; do
  missing_libs=$(find "$rootfs/usr" -type f \( -name '*.so*' -o -perm -u+x \) -print0 2>/dev/null \
    | xargs -0 -r readelf -d 2>/dev/null | awk '/\(NEEDED\)/ {gsub(/[][]/, "", $5); print $5}' | sort -u \
    | comm -23 - <(find "$rootfs" \( -type f -o -type l \) -printf '%f\n' | sort -u) || true)
  [ -z "$missing_libs" ] && break
  for lib in $missing_libs; do
    src=$(ldconfig -p | awk -v name="$lib" '$1 == name {print $NF}' | head -n 1 || true)
    [ -n "$src" ] || continue                     # not a system library (e.g. gconv's own modules)
    src=$(readlink -f "$src")                     # /lib/... is /usr/lib/... on a usr-merged host
    mkdir -p "$rootfs$(dirname "$src")"
    cp -a "$src" "$rootfs$src"
    ln -sf "$(basename "$src")" "$rootfs$(dirname "$src")/$lib" 2>/dev/null || true
  done
done

ln -sf python3.11 "$rootfs/usr/bin/python3"
ln -sf dash "$rootfs/usr/bin/sh"
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/" 2>/dev/null || true
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' > "$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$rootfs/etc/group"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$rootfs/etc/hosts"

chroot "$rootfs" /usr/bin/python3 -c 'import ssl, sqlite3, venv, ctypes, json, zlib, lzma, bz2, uuid' \
  || { echo "base image: the root filesystem cannot import the standard library" >&2; exit 1; }

tar -C "$rootfs" --numeric-owner -cf - . | "$docker_cli" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c "LABEL canary-harness.base-hash=$hash" \
  -c 'CMD ["/usr/bin/python3"]' - "$image" >/dev/null
echo "base image $image built ($hash, $(du -sh "$rootfs" | cut -f1))"
