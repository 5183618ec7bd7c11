#!/usr/bin/env bash
# Run a bundle's golden inputs on an iOS simulator or iPhone with `xcodebuild test` and collect
# outputs.npz for `edgedistill validate --device-outputs`.
#
#   scripts/run-xcode-test.sh BUNDLE [DESTINATION] [OUT]
#     BUNDLE       an edgedistill bundle folder (coreml or executorch)
#     DESTINATION  xcodebuild -destination (default: 'platform=iOS Simulator,name=iPhone 16')
#                  e.g. 'platform=iOS,id=<UDID from xcrun xctrace list devices>'
#     OUT          where outputs.npz and the .xcresult go (default: ./ios-run)
#   WARMUP=5 RUNS=20 to change the timing loop.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?usage: scripts/run-xcode-test.sh BUNDLE [DESTINATION] [OUT]}
destination=${2:-platform=iOS Simulator,name=iPhone 16}
out=$(mkdir -p "${3:-ios-run}" && cd "${3:-ios-run}" && pwd)
[ -f "$bundle/manifest.json" ] || { echo "error: $bundle is not a bundle (no manifest.json)" >&2; exit 2; }

# the test reads its bundle from its resources (a device cannot see this Mac's files)
resources=Tests/EdgeBundleDeviceTests/Resources/bundle
find "$resources" -mindepth 1 ! -name README.md -exec rm -rf {} +
cp -R "$bundle"/. "$resources"/

rm -rf "$out/result.xcresult" "$out/outputs.npz"
# TEST_RUNNER_X reaches the test as X; a simulator can write straight to this Mac's $out
TEST_RUNNER_EDGEDISTILL_WARMUP=${WARMUP:-5} TEST_RUNNER_EDGEDISTILL_RUNS=${RUNS:-20} \
TEST_RUNNER_EDGEDISTILL_OUTPUTS="$out/outputs.npz" \
  xcodebuild test -scheme EdgeDistillExample-Package -destination "$destination" \
    -only-testing:EdgeBundleDeviceTests -resultBundlePath "$out/result.xcresult" | tail -n 30

if [ ! -f "$out/outputs.npz" ]; then  # a device: the file comes back as the test's attachment
  xcrun xcresulttool export attachments --path "$out/result.xcresult" --output-path "$out/attachments"
  found=$(find "$out/attachments" -name '*outputs*.npz' | head -n 1)
  [ -n "$found" ] || { echo "error: no outputs.npz in $out/result.xcresult" >&2; exit 2; }
  cp "$found" "$out/outputs.npz"
fi
find "$resources" -mindepth 1 ! -name README.md -exec rm -rf {} +
echo "outputs: $out/outputs.npz"
echo "validate: edgedistill validate $bundle --device-outputs $out/outputs.npz --out $out/report"
