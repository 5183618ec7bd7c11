package org.edgedistill.example

import org.edgedistill.core.BundleError
import org.edgedistill.core.BundleRunner
import org.edgedistill.core.InputTensor
import org.edgedistill.core.Quantization
import org.edgedistill.core.argumentOrder
import org.tensorflow.lite.DataType
import org.tensorflow.lite.Interpreter
import org.tensorflow.lite.Tensor
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder

/**
 * LiteRT's Interpreter through the model's signature. Inputs go in manifest order, which is the
 * signature's argument order (args_0, args_1, … as litert-torch names them, sorted by number, as
 * edgedistill's host runner does). int8/uint8 tensors are (de)quantized with the scale and zero
 * point the .tflite gives each tensor.
 */
class LiteRtRunner(private val model: File, private val threads: Int) : BundleRunner {
    override val runtime = "litert"
    private var interpreter: Interpreter? = null
    private lateinit var key: String
    private lateinit var inputNames: List<String>
    private lateinit var outputName: String

    override fun load() {
        val options = Interpreter.Options()
        if (threads > 0) options.setNumThreads(threads)
        val i = Interpreter(model, options)
        key = i.signatureKeys.firstOrNull() ?: throw BundleError("${model.name} has no signature")
        inputNames = argumentOrder(i.getSignatureInputs(key).toList())
        outputName = i.getSignatureOutputs(key).first()
        interpreter = i
    }

    override fun run(inputs: List<InputTensor>): FloatArray {
        val i = interpreter ?: throw IllegalStateException("load() before run()")
        if (inputs.size != inputNames.size) throw BundleError("the model takes ${inputNames.size} inputs, the manifest lists ${inputs.size}")
        val feeds = HashMap<String, Any>()
        inputs.forEachIndexed { k, t -> feeds[inputNames[k]] = encode(i.getInputTensorFromSignature(inputNames[k], key), t) }
        val out = i.getOutputTensorFromSignature(outputName, key)
        val buffer = ByteBuffer.allocateDirect(out.numBytes()).order(ByteOrder.nativeOrder())
        i.runSignature(feeds, mapOf(outputName to buffer), key)
        buffer.rewind()
        return decode(out, buffer)
    }

    private fun encode(tensor: Tensor, t: InputTensor): ByteBuffer {
        val count = t.shape.fold(1L) { a, b -> a * b }.toInt()
        if (tensor.numElements() != count) throw BundleError("input ${t.name}: the model takes ${tensor.shape().toList()}, got ${t.shape.toList()}")
        val b = ByteBuffer.allocateDirect(tensor.numBytes()).order(ByteOrder.nativeOrder())
        val d = t.data
        when (tensor.dataType()) {
            DataType.FLOAT32 -> (d as FloatArray).forEach { b.putFloat(it) }
            DataType.INT64 -> (d as LongArray).forEach { b.putLong(it) }
            DataType.INT32 -> when (d) {
                is IntArray -> d.forEach { b.putInt(it) }
                is LongArray -> d.forEach { b.putInt(it.toInt()) }  // token ids: the converter narrows int64 to int32
                else -> throw BundleError("input ${t.name}: int32 tensor fed non-integers")
            }
            DataType.INT8, DataType.UINT8 -> {
                val q = tensor.quantizationParams()
                b.put(Quantization.quantize(d as FloatArray, q.scale, q.zeroPoint, tensor.dataType() == DataType.UINT8))
            }
            else -> throw BundleError("input ${t.name}: LiteRT tensor type ${tensor.dataType()} is not supported")
        }
        b.rewind()
        return b
    }

    private fun decode(tensor: Tensor, b: ByteBuffer): FloatArray = when (tensor.dataType()) {
        DataType.FLOAT32 -> FloatArray(tensor.numElements()).also { b.asFloatBuffer().get(it) }
        DataType.INT8, DataType.UINT8 -> {
            val q = tensor.quantizationParams()
            val raw = ByteArray(tensor.numElements()).also { b.get(it) }
            Quantization.dequantize(raw, q.scale, q.zeroPoint, tensor.dataType() == DataType.UINT8)
        }
        else -> throw BundleError("output type ${tensor.dataType()} is not supported")
    }

    override fun close() {
        interpreter?.close()
        interpreter = null
    }
}
