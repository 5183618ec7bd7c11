package org.edgedistill.example

import org.edgedistill.core.BundleError
import org.edgedistill.core.BundleRunner
import org.edgedistill.core.InputTensor
import org.pytorch.executorch.EValue
import org.pytorch.executorch.Module
import org.pytorch.executorch.Tensor
import java.io.File

/** ExecuTorch's Android runtime (XNNPACK and the kernels the AAR ships): Module.load + forward. */
class ExecuTorchRunner(private val model: File) : BundleRunner {
    override val runtime = "executorch"
    private var module: Module? = null

    override fun load() {
        val m = Module.load(model.absolutePath)
        m.loadMethod("forward")  // load the method now, so the first inference is timed on its own
        module = m
    }

    override fun run(inputs: List<InputTensor>): FloatArray {
        val m = module ?: throw IllegalStateException("load() before run()")
        val values = inputs.map { t ->
            val tensor = when (val d = t.data) {
                is FloatArray -> Tensor.fromBlob(d, t.shape)
                is LongArray -> Tensor.fromBlob(d, t.shape)
                is IntArray -> Tensor.fromBlob(d, t.shape)
                else -> throw BundleError("input ${t.name}: unsupported data for ExecuTorch")
            }
            EValue.from(tensor)
        }
        val outputs = m.forward(*values.toTypedArray())
        if (outputs.isEmpty()) throw BundleError("the program returned no outputs")
        return outputs[0].toTensor().dataAsFloatArray
    }

    override fun close() {
        module?.destroy()
        module = null
    }
}
