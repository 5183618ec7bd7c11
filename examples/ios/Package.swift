// swift-tools-version:5.9
// examples/ios: run an edgedistill bundle on an iPhone (Core ML .mlpackage, or ExecuTorch .pte).
//   EdgeBundleCore     Foundation only: manifest, npz/npy, WordPiece, outputs writer, timing statistics
//                      (`swift test --filter EdgeBundleCoreTests` runs on macOS, and on Linux with a Swift toolchain)
//   EdgeBundleRunners  Core ML and ExecuTorch runners behind one protocol (Apple platforms)
//   EdgeBundleDeviceTests  the XCTest that runs a bundle's golden inputs (scripts/run-xcode-test.sh)
import PackageDescription

let package = Package(
    name: "EdgeDistillExample",
    platforms: [.iOS(.v17), .macOS(.v14)],
    products: [
        .library(name: "EdgeBundleCore", targets: ["EdgeBundleCore"]),
        .library(name: "EdgeBundleRunners", targets: ["EdgeBundleRunners"]),
    ],
    dependencies: [
        // The runtime must be at least the executorch that exported the bundle (manifest.json: versions.executorch).
        .package(url: "https://github.com/pytorch/executorch.git", branch: "swiftpm-1.0.1"),
    ],
    targets: [
        .target(name: "EdgeBundleCore"),
        .target(
            name: "EdgeBundleRunners",
            dependencies: [
                "EdgeBundleCore",
                .product(name: "executorch", package: "executorch", condition: .when(platforms: [.iOS, .macOS])),
                .product(name: "backend_xnnpack", package: "executorch", condition: .when(platforms: [.iOS, .macOS])),
                .product(name: "backend_coreml", package: "executorch", condition: .when(platforms: [.iOS, .macOS])),
                .product(name: "kernels_optimized", package: "executorch", condition: .when(platforms: [.iOS, .macOS])),
                .product(name: "kernels_quantized", package: "executorch", condition: .when(platforms: [.iOS, .macOS])),
            ],
            // ExecuTorch backends and kernels register themselves from static initializers
            linkerSettings: [.unsafeFlags(["-all_load"])]
        ),
        .testTarget(name: "EdgeBundleCoreTests", dependencies: ["EdgeBundleCore"]),
        .testTarget(
            name: "EdgeBundleDeviceTests",
            dependencies: ["EdgeBundleCore", "EdgeBundleRunners"],
            resources: [.copy("Resources/bundle")]
        ),
    ]
)
