#!/usr/bin/env bash
# The end-to-end show of what gwexchange does today, with the real `gwx` command a clerk types:
# make a PKI, draft and sign the sample notice, verify it, tamper with one byte, watch verification fail;
# then a joint document signed by two departments, and a revoked certificate refused.
# Run it from the repository with the venv's gwx on PATH: `PATH="$PWD/.venv/bin:$PATH" bash examples/demo.sh` (after
# `./dev.sh test` has installed the fonts); without a gwx on PATH it takes .venv/bin/gwx. Everything it makes goes
# into demo-output/ (deleted first). `./dev.sh demo` runs `gwx demo`.
set -euo pipefail

# Which gwx: the one on PATH, made absolute before the cd below (a relative PATH entry such as .venv/bin would
# find nothing once the script is in demo-output/), else the repository's own .venv.
gwx_bin=""
if found=$(command -v gwx); then
  gwx_bin="$(cd "$(dirname "$found")" && pwd)/$(basename "$found")"
fi
cd "$(dirname "$0")/.."
if [ -z "$gwx_bin" ] && [ -x .venv/bin/gwx ]; then
  gwx_bin="$PWD/.venv/bin/gwx"
fi
if [ -z "$gwx_bin" ]; then
  echo 'demo.sh: no gwx on PATH and no .venv/bin/gwx: run ./dev.sh test first, or put a gwx on PATH' >&2
  exit 1
fi
gwx() { "$gwx_bin" "$@"; }
OUT=demo-output
rm -rf "$OUT"
mkdir -p "$OUT"
cp -r examples/*.toml examples/*.txt examples/attachments "$OUT"/
cd "$OUT"

# Passphrases come from the environment (or --passphrase-file), never from the command line.
export GWX_CA_PASSPHRASE="demo-ca-passphrase" GWX_KEY_PASSPHRASE="demo-key-passphrase"
export GWX_PKI_HOME=ca GWX_ROOT=ca/root.crt GWX_CRL=ca/crl.pem

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
expect_failure() {
  printf '$ %s\n' "$*"
  local rc=0
  "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then echo "!! this should have failed" >&2; exit 1; fi
  echo "（退出码 $rc：已拒绝，符合预期）"
}

step "1. 安全中心：创建根证书，为三个厅局签发签名证书与加密证书"
run gwx pki init --name "广东省电子政务安全中心" --code gd.gov.ca
run gwx pki issue --code gd.gov.office --name "广东省人民政府办公厅" --role department
run gwx pki issue --code gd.gov.czt --name "广东省财政厅" --role department
run gwx pki issue --code gd.gov.gxt --name "广东省工业和信息化厅" --role department
run gwx pki issue --code gd-gxt --name "广东省工业和信息化厅交换节点" --role node
run gwx pki list

step "2. 收发员：由描述文件起草通知，用办公厅的签名私钥签发"
run gwx doc new notice.toml -o notice.xml
run gwx doc sign notice.xml --key ca/issued/gd.gov.office/signing.key --cert ca/issued/gd.gov.office/signing.crt
run gwx doc show notice.signed.xml > notice.txt
head -n 14 notice.txt
echo "  …（全文见 $(pwd)/notice.txt）"

step "3. 任何持有根证书的人都能验证"
run gwx verify notice.signed.xml

step "4. 篡改一个字节（标题中的“印发”改为“印废”），验证失败"
python3 - <<'EOF'
from pathlib import Path
p = Path("notice.signed.xml")
data = p.read_bytes()
i = data.index("印发《".encode())
Path("notice.tampered.xml").write_bytes(data[:i + 3] + "废".encode() + data[i + 6:])
print("wrote notice.tampered.xml: one character of the title changed")
EOF
expect_failure gwx verify notice.tampered.xml

step "5. 联合发文：财政厅与工业和信息化厅依次签署"
run gwx doc new joint-notice.toml -o joint.xml
run gwx doc sign joint.xml -o joint.czt.xml --key ca/issued/gd.gov.czt/signing.key --cert ca/issued/gd.gov.czt/signing.crt
expect_failure gwx verify joint.czt.xml
run gwx doc sign joint.czt.xml -o joint.signed.xml --root ca/root.crt --crl ca/crl.pem \
  --key ca/issued/gd.gov.gxt/signing.key --cert ca/issued/gd.gov.gxt/signing.crt
run gwx verify joint.signed.xml

step "6. 带附件的函：附件的摘要在签名之内"
run gwx doc new letter.toml -o letter.xml
run gwx doc sign letter.xml --key ca/issued/gd.gov.gxt/signing.key --cert ca/issued/gd.gov.gxt/signing.crt
run gwx verify letter.signed.xml --attachments attachments
echo "序号,数据资源名称" >> attachments/share-catalogue.csv
expect_failure gwx verify letter.signed.xml --attachments attachments

step "7. 封装：为每个收文机关加密，由发送节点签名；枢纽不解密也能验证"
cp ../examples/attachments/share-catalogue.csv attachments/share-catalogue.csv
run gwx seal letter.signed.xml --node-keys ca/issued/gd-gxt --certs ca/issued --attachments attachments -o letter.gwx
run gwx inspect letter.gwx

step "8. 财政厅拆封（验证三层封装，写出公文和附件），出具签收回执；发文方验证回执"
run gwx open letter.gwx --keys ca/issued/gd.gov.czt -o inbox-czt
run gwx receipt make letter.gwx --kind 签收 --keys ca/issued/gd.gov.czt -o letter.signed-for.xml
run gwx receipt verify letter.signed-for.xml --envelope letter.gwx --document letter.signed.xml
echo "（广东省工业和信息化厅不是收文机关，它的密钥打不开这封信）"
expect_failure gwx open letter.gwx --keys ca/issued/gd.gov.gxt -o inbox-gxt

step "9. 私钥泄露：吊销办公厅的签名证书，此前签发的通知不再被信任"
serial=$(gwx pki list --json | python3 -c 'import json,sys; print(next(e["serial"] for e in json.load(sys.stdin) if e["code"] == "gd.gov.office" and e["usage"] == "signing"))')
run gwx pki revoke "$serial" --reason keyCompromise
expect_failure gwx verify notice.signed.xml

step "10. 存档 PDF：办公厅换发证书、重新签发通知，生成 GB/T 9704 版式的 PDF，PDF 自身即可验证"
run gwx pki issue --code gd.gov.office --name "广东省人民政府办公厅" --role department
run gwx doc sign notice.xml --key ca/issued/gd.gov.office/signing.key --cert ca/issued/gd.gov.office/signing.crt
run gwx render notice.signed.xml -o notice.pdf \
  --key ca/issued/gd.gov.office/signing.key --cert ca/issued/gd.gov.office/signing.crt
run gwx verify notice.pdf
if command -v pdfsig >/dev/null; then
  pdfsig notice.pdf | grep -E "Common Name|Signature Validation|Total document"
  echo "（任何 PDF 阅读器都能看到办公厅的签名；导入本安全中心的根证书后显示为可信）"
fi
python3 - <<'EOF'
from pathlib import Path
pdf, xml = Path("notice.pdf").read_bytes(), Path("notice.signed.xml").read_bytes()
i = pdf.index(xml) + xml.index("印发《".encode())
Path("notice.tampered.pdf").write_bytes(pdf[:i + 3] + "废".encode() + pdf[i + 6:])
print("wrote notice.tampered.pdf: one character of the title in the embedded XML changed")
EOF
expect_failure gwx verify notice.tampered.pdf

step "完成：所有文件在 $(pwd)"
