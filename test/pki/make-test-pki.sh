#!/bin/bash
# make-test-pki.sh OUTDIR
#
# Creates the test PKI of the loopback test setup (EC P-256, 10 years) with the
# openssl CLI. Idempotent: does nothing when OUTDIR/.done-v6 exists. Safe to run
# concurrently (flock on OUTDIR.lock). Every file is world-readable (Prosody
# may run as another user). Cert files hold the leaf only; peers get the CA files.
#
#   ca-low      CA of the low side        ca-high   CA of the high side
#   ca-rogue    untrusted CA
#   a.test      by ca-low:   a.test, conference.a.test     (low side's Prosody)
#   b.test      by ca-high:  b.test, conference.b.test     (high side's Prosody)
#   guard-low   by ca-low:   b.test, conference.b.test, rooms.low.test, rooms.site-b.test
#                                                          (guard, facing low)
#   guard-high  by ca-high:  a.test, conference.a.test, rooms.high.test, rooms.site-a.test
#                                                          (guard, facing high; the
#                            rooms.site-* names: FMUC pass-through fronts the far node)
#   conference.b.test-own by ca-low: conference.b.test    (guard, facing low: that
#                            domain's own certificate, chosen by SNI)
#   node-a      by ca-low:   rooms.site-a.test             (standalone FMUC node, low side)
#   node-b      by ca-high:  rooms.site-b.test             (standalone FMUC node, high side)
#   rogue-a.test by ca-rogue: a.test, conference.a.test    (impostor)
#   wildcard    by ca-low:   DNS *.w.test, SRVName _xmpp-server.srv.test,
#                            xmppAddr x.test               (identity tests)
#   ca-low.crl, ca-high.crl  CRLs revoking nothing; ca-low-revoked-a.test.crl:
#                            ca-low's CRL revoking a.test (revocation tests)
#   a.test-ocsp-good.der, a.test-ocsp-revoked.der: OCSP responses of ca-low
#                            for a.test (good / revoked), for stapling tests;
#   a.test-ocsp-rogue.der:   a.test "good", signed by ca-rogue (must not verify)
#
# On failure: exit 1 with one line "make-test-pki: <what> failed: <reason>".
set -u
umask 022

fail() {
  echo "make-test-pki: $*" >&2
  exit 1
}

[ $# -eq 1 ] || fail "usage: make-test-pki.sh OUTDIR"
OUT=$1
[ -f "$OUT/.done-v6" ] && exit 0
command -v openssl >/dev/null 2>&1 || fail "openssl CLI not found"
mkdir -p "$OUT" 2>/dev/null || fail "cannot create $OUT"
OUT=$(cd "$OUT" 2>/dev/null && pwd) || fail "cannot enter $OUT"

exec 9>"$OUT.lock" || fail "cannot create lock file $OUT.lock"
flock 9 || fail "cannot lock $OUT.lock"
[ -f "$OUT/.done-v6" ] && exit 0   # another run finished while we waited

WORK=$(mktemp -d "$OUT/.work.XXXXXX") || fail "cannot create a work directory in $OUT"
trap 'rm -rf "$WORK"' EXIT

# run WHAT CMD...: runs CMD quietly; on failure prints its last error line.
run() {
  local what=$1
  shift
  local log
  if ! log=$("$@" 2>&1); then
    local last
    last=$(printf '%s\n' "$log" | grep -v '^\s*$' | tail -n 1)
    fail "$what failed: ${last:-exit status $?}"
  fi
}

DAYS=3650

new_key() {  # name
  run "key $1" openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$WORK/$1.key"
}

make_ca() {  # name CN
  new_key "$1"
  cat >"$WORK/$1.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
O = Portcullis test PKI
CN = $2
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
  run "CA $1" openssl req -new -x509 -sha256 -days "$DAYS" -key "$WORK/$1.key" \
    -config "$WORK/$1.cnf" -set_serial "0x$(openssl rand -hex 16)" -out "$WORK/$1.pem"
}

make_leaf() {  # name ca CN san-lines...
  local name=$1 ca=$2 cn=$3
  shift 3
  new_key "$name"
  {
    cat <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
O = Portcullis test PKI
CN = $cn
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = @san
[san]
EOF
    printf '%s\n' "$@"
  } >"$WORK/$name.cnf"
  run "CSR $name" openssl req -new -sha256 -key "$WORK/$name.key" -config "$WORK/$name.cnf" \
    -out "$WORK/$name.csr"
  run "certificate $name" openssl x509 -req -sha256 -days "$DAYS" -in "$WORK/$name.csr" \
    -CA "$WORK/$ca.pem" -CAkey "$WORK/$ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -extfile "$WORK/$name.cnf" -extensions v3_leaf -out "$WORK/$name.pem"
  run "verify $name" openssl verify -CAfile "$WORK/$ca.pem" "$WORK/$name.pem"
}

make_ca ca-low "Portcullis test CA low"
make_ca ca-high "Portcullis test CA high"
make_ca ca-rogue "Rogue CA"

make_leaf a.test ca-low a.test "DNS.1 = a.test" "DNS.2 = conference.a.test"
make_leaf b.test ca-high b.test "DNS.1 = b.test" "DNS.2 = conference.b.test"
make_leaf guard-low ca-low b.test "DNS.1 = b.test" "DNS.2 = conference.b.test" "DNS.3 = rooms.low.test" \
  "DNS.4 = rooms.site-b.test"
make_leaf guard-high ca-high a.test "DNS.1 = a.test" "DNS.2 = conference.a.test" "DNS.3 = rooms.high.test" \
  "DNS.4 = rooms.site-a.test"
# A certificate of its own for one domain the low side fronts (chosen by SNI).
make_leaf conference.b.test-own ca-low conference.b.test "DNS.1 = conference.b.test"
make_leaf node-a ca-low rooms.site-a.test "DNS.1 = rooms.site-a.test"
make_leaf node-b ca-high rooms.site-b.test "DNS.1 = rooms.site-b.test"
make_leaf rogue-a.test ca-rogue a.test "DNS.1 = a.test" "DNS.2 = conference.a.test"
make_leaf wildcard ca-low wildcard.test "DNS.1 = *.w.test" \
  "otherName.1 = 1.3.6.1.5.5.7.8.7;IA5STRING:_xmpp-server.srv.test" \
  "otherName.2 = 1.3.6.1.5.5.7.8.5;UTF8:x.test"

# make_crl CA OUT [REVOKED...]: a CRL of CA (valid DAYS) listing the REVOKED leaf certificates.
make_crl() {
  local ca=$1 out=$2
  shift 2
  local db="$WORK/$out.db"
  mkdir -p "$db" || fail "cannot create $db"
  : >"$db/index.txt"
  echo 1000 >"$db/crlnumber"
  printf '%s\n' "[ca]" "default_ca = d" "[d]" "database = $db/index.txt" "crlnumber = $db/crlnumber" \
    "certificate = $WORK/$ca.pem" "private_key = $WORK/$ca.key" "default_md = sha256" \
    "default_crl_days = $DAYS" >"$db/ca.cnf"
  local c
  for c in "$@"; do
    run "revoke $c" openssl ca -batch -config "$db/ca.cnf" -revoke "$WORK/$c.pem" -crl_reason keyCompromise
  done
  run "CRL $out" openssl ca -batch -config "$db/ca.cnf" -gencrl -out "$WORK/$out.crl"
  chmod 0644 "$WORK/$out.crl" || fail "chmod $out.crl failed"
  mv -f "$WORK/$out.crl" "$OUT/" || fail "cannot move $out.crl into $OUT"
}
# CRLs of each side's CA: nothing revoked, and (low side) a.test's certificate revoked.
make_crl ca-low ca-low
make_crl ca-high ca-high
make_crl ca-low ca-low-revoked-a.test a.test

# make_ocsp SIGNER CERT STATUS OUT: an OCSP response about CERT (issued by
# ca-low) saying STATUS (valid|revoked), signed by SIGNER, valid DAYS.
make_ocsp() {
  local signer=$1 cert=$2 status=$3 out=$4
  local db="$WORK/$out.ocspdb"
  mkdir -p "$db" || fail "cannot create $db"
  : >"$db/index.txt"
  printf '%s\n' "[ca]" "default_ca = d" "[d]" "database = $db/index.txt" \
    "certificate = $WORK/ca-low.pem" "private_key = $WORK/ca-low.key" "default_md = sha256" >"$db/ca.cnf"
  if [ "$status" = revoked ]; then
    run "revoke $cert for OCSP" openssl ca -batch -config "$db/ca.cnf" -revoke "$WORK/$cert.pem" -crl_reason keyCompromise
  else
    run "index $cert for OCSP" openssl ca -batch -config "$db/ca.cnf" -valid "$WORK/$cert.pem"
  fi
  run "OCSP request $out" openssl ocsp -issuer "$WORK/ca-low.pem" -cert "$WORK/$cert.pem" -no_nonce -reqout "$db/req.der"
  run "OCSP response $out" openssl ocsp -index "$db/index.txt" -CA "$WORK/ca-low.pem" -rsigner "$WORK/$signer.pem" \
    -rkey "$WORK/$signer.key" -reqin "$db/req.der" -ndays "$DAYS" -respout "$WORK/$out.der"
  chmod 0644 "$WORK/$out.der" || fail "chmod $out.der failed"
  mv -f "$WORK/$out.der" "$OUT/" || fail "cannot move $out.der into $OUT"
}
make_ocsp ca-low a.test valid a.test-ocsp-good
make_ocsp ca-low a.test revoked a.test-ocsp-revoked
make_ocsp ca-rogue a.test valid a.test-ocsp-rogue

for n in ca-low ca-high ca-rogue a.test b.test guard-low guard-high conference.b.test-own node-a node-b rogue-a.test wildcard; do
  chmod 0644 "$WORK/$n.pem" "$WORK/$n.key" || fail "chmod $n failed"
  mv -f "$WORK/$n.pem" "$WORK/$n.key" "$OUT/" || fail "cannot move $n into $OUT"
done
chmod 0755 "$OUT" || fail "chmod $OUT failed"
touch "$OUT/.done-v6" || fail "cannot write $OUT/.done-v6"
exit 0
