package org.edgedistill.example

import org.edgedistill.core.BundleError
import org.edgedistill.core.BundleRunner
import org.edgedistill.core.Manifest
import java.io.File

/** The runner for a bundle's format: ExecuTorch for .pte, LiteRT for .tflite. */
object BundleRunners {
    /** A runner for [bundle]'s model; [threads] 0 lets the runtime choose. */
    fun open(bundle: File, manifest: Manifest, threads: Int): BundleRunner {
        val model = manifest.modelPath(bundle)
        if (!model.isFile) throw BundleError("bundle $bundle is missing its model file ${manifest.modelFile}")
        return when (manifest.format) {
            "executorch" -> ExecuTorchRunner(model)
            "litert" -> LiteRtRunner(model, threads)
            else -> throw BundleError("this app runs executorch (.pte) and litert (.tflite) bundles, not ${manifest.format}")
        }
    }
}
