#!/bin/sh
# The registry's TLS files, once: a CA and a server certificate for NAME... signed by it,
# generated into DIR (the volume) when DIR has no server.crt and server.key yet. An
# operator's own pair there is used as it is. Files appear whole or not at all: they are
# made in a temporary directory beside them, and the key moves into place before the
# certificate that tells the next start they exist.
#
#   tls.sh DIR NAME...
set -eu
dir=$1
shift
if [ -s "$dir/server.crt" ] && [ -s "$dir/server.key" ]; then
    echo "tls: using $dir/server.crt"
    exit 0
fi
umask 077
mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.tls.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
san=
for name in "$@"; do
    case $name in
        *[!0-9.]*) san="$san,DNS:$name" ;;
        *) san="$san,IP:$name" ;;
    esac
done
printf '[req]\ndistinguished_name = dn\n[dn]\n' > "$tmp/req.cnf"
printf 'basicConstraints = critical,CA:FALSE\nkeyUsage = digitalSignature\nextendedKeyUsage = serverAuth\nsubjectAltName = %s\n' \
    "${san#,}" > "$tmp/server.ext"
printf 'basicConstraints = critical,CA:TRUE\nkeyUsage = keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n' > "$tmp/ca.ext"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key "$tmp/ca.key"
openssl req -config "$tmp/req.cnf" -new -key "$tmp/ca.key" -subj "/CN=launch registry CA" -out "$tmp/ca.csr"
openssl x509 -req -in "$tmp/ca.csr" -signkey "$tmp/ca.key" -days 3650 -extfile "$tmp/ca.ext" \
    -out "$tmp/ca.crt" 2>/dev/null
key "$tmp/server.key"
openssl req -config "$tmp/req.cnf" -new -key "$tmp/server.key" -subj "/CN=${1:-localhost}" -out "$tmp/server.csr"
openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" -CAcreateserial \
    -days 825 -extfile "$tmp/server.ext" -out "$tmp/server.crt" 2>/dev/null
chmod 644 "$tmp/ca.crt" "$tmp/server.crt"
mv "$tmp/ca.key" "$tmp/ca.crt" "$tmp/server.key" "$dir/"
mv "$tmp/server.crt" "$dir/"
echo "tls: generated a CA ($dir/ca.crt) and a server certificate for $*"
