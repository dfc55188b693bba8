#!/bin/sh
# Validates every stanza of the corpus against both application profiles with
# libxml2 (xmllint), an independent validator from the guard's Xerces-C++.
# Corpus file names: NAME.EXPECT.xml, EXPECT = both | broad | none.
set -u
schemas="$1"
corpus="$2"
fail=0
count=0
for profile in strict broad; do
  for f in "$corpus"/*.xml; do
    expect=$(basename "$f" .xml); expect=${expect##*.}
    want=invalid
    [ "$expect" = both ] && want=valid
    [ "$expect" = broad ] && [ "$profile" = broad ] && want=valid
    if xmllint --noout --nonet --schema "$schemas/$profile.xsd" "$f" 2>/dev/null; then got=valid; else got=invalid; fi
    count=$((count + 1))
    if [ "$got" != "$want" ]; then
      echo "FAIL $profile $(basename "$f"): expected $want, got $got"
      fail=1
    fi
  done
done
echo "$count checks"
exit $fail
