import EdgeBundleCore
import EdgeBundleRunners
import XCTest

/// Runs a bundle's golden inputs on the simulator or iPhone and writes outputs.npz
/// (docs/device-outputs.md) for `edgedistill validate --device-outputs`, as the Android
/// instrumentation test does. scripts/run-xcode-test.sh copies the bundle into
/// Resources/bundle, runs this with `xcodebuild test` and collects the outputs file.
///
/// Settings (TEST_RUNNER_-prefixed on the xcodebuild command line): EDGEDISTILL_WARMUP (5),
/// EDGEDISTILL_RUNS (20), EDGEDISTILL_OUTPUTS (a path the simulator can write; a device keeps
/// the file as an attachment of the result bundle only).
final class GoldenRunTests: XCTestCase {
    func testGoldenInputs() throws {
        let env = ProcessInfo.processInfo.environment
        guard let bundle = Bundle.module.url(forResource: "bundle", withExtension: nil),
              FileManager.default.fileExists(atPath: bundle.appendingPathComponent("manifest.json").path) else {
            throw XCTSkip("no bundle in Resources/bundle: run scripts/run-xcode-test.sh BUNDLE")
        }
        let manifest = try Manifest.read(bundle: bundle)
        let golden = try GoldenRun(bundle: bundle, manifest: manifest)
        if manifest.goldenCount >= 0 { XCTAssertEqual(golden.rows, manifest.goldenCount, "golden rows vs manifest golden.count") }
        let runner = try BundleRunners.open(bundle: bundle, manifest: manifest)
        let result = try golden.measure(runner, warmup: Int(env["EDGEDISTILL_WARMUP"] ?? "") ?? 5,
                                        runs: Int(env["EDGEDISTILL_RUNS"] ?? "") ?? 20)
        let outputs = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("edgedistill-outputs.npz")
        try DeviceOutputs.write(outputs, result, modelSha256: manifest.sha256, device: deviceName())
        if let mac = env["EDGEDISTILL_OUTPUTS"] {  // a simulator can write to the Mac; a device cannot (attachment below)
            try? FileManager.default.removeItem(atPath: mac)
            try? FileManager.default.copyItem(at: outputs, to: URL(fileURLWithPath: mac))
        }
        print("edgedistill: \(result.runtime): \(try TimingStats(result.latencyMs).summary)")
        let attachment = XCTAttachment(contentsOfFile: outputs)
        attachment.name = "outputs.npz"
        attachment.lifetime = .keepAlways
        add(attachment)
    }

    private func deviceName() -> String {
        var info = utsname()
        uname(&info)
        let machine = withUnsafeBytes(of: &info.machine) { raw in String(decoding: raw.prefix { byte in byte != 0 }, as: UTF8.self) }
        return ProcessInfo.processInfo.environment["SIMULATOR_MODEL_IDENTIFIER"].map { "\($0) simulator" } ?? machine
    }
}
