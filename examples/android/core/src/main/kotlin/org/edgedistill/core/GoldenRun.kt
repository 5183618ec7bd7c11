package org.edgedistill.core

import java.io.File

/**
 * Signature input names in the model's argument order, as edgedistill's LiteRT exporter orders
 * them (numbers compared as numbers: args_2 before args_10), which is the manifest's input order.
 */
fun argumentOrder(names: List<String>): List<String> {
    val parts = { n: String -> Regex("\\d+|\\D+").findAll(n).map { it.value }.toList() }
    return names.sortedWith(Comparator { a, b ->
        val pa = parts(a)
        val pb = parts(b)
        for (k in 0 until minOf(pa.size, pb.size)) {
            val na = pa[k].toBigIntegerOrNull()
            val nb = pb[k].toBigIntegerOrNull()
            val c = if (na != null && nb != null) na.compareTo(nb) else pa[k].compareTo(pb[k])
            if (c != 0) return@Comparator c
        }
        pa.size - pb.size
    })
}

/** One input tensor for one call: its manifest name, shape, and data (FloatArray, LongArray or IntArray). */
class InputTensor(val name: String, val shape: LongArray, val data: Any)

/**
 * A model runtime behind one interface: ExecuTorch for .pte, LiteRT for .tflite (Android), Core ML
 * or ExecuTorch on iOS. [run] takes the inputs in manifest order and returns the first output as
 * float logits (a runner with int8 outputs dequantizes them).
 */
interface BundleRunner : AutoCloseable {
    /** The runtime's name, written into the outputs (executorch, litert). */
    val runtime: String

    /** Load the model (timed separately from the first inference). */
    fun load()

    /** Run one call. */
    fun run(inputs: List<InputTensor>): FloatArray
}

/**
 * The golden-input harness shared by the instrumentation test and the unit tests: builds each
 * golden row's inputs as the manifest says (tokenizing `text` when the bundle is a text bundle),
 * loads the model, runs warm-ups and timed runs on row 0, then every row once for the outputs.
 */
class GoldenRun(private val bundle: File, private val manifest: Manifest) {
    private val golden = Npy.readNpz(File(bundle, "golden/golden.npz"))
    private val tokenizer = manifest.wordPiece?.let { WordPieceTokenizer.forBundle(bundle, it) }

    /** How many golden rows there are. */
    val rows: Int = golden[manifest.inputs[0].name]?.shape?.get(0)?.toInt()
        ?: golden["text"]?.shape?.get(0)?.toInt()
        ?: throw BundleError("golden.npz has no '${manifest.inputs[0].name}' and no 'text'")

    /** The inputs of golden row [i], in manifest order, with the manifest's dtypes and shapes. */
    fun inputs(i: Int): List<InputTensor> =
        build(i, tokenizer?.let { t -> golden["text"]?.let { t.encode(it.strings()[i]) } })

    /** The inputs for a text typed by a user (text bundles only). */
    fun inputsForText(text: String): List<InputTensor> =
        build(0, (tokenizer ?: throw BundleError("this bundle has no tokenizer: it does not take text")).encode(text))

    private fun build(i: Int, encoding: Encoding?): List<InputTensor> {
        return manifest.inputs.map { spec ->
            val shape = spec.sampleShape()
            val perRow = shape.fold(1L) { a, b -> a * b }.toInt()
            val fromText = when (spec.name) {
                "input_ids" -> encoding?.inputIds
                "attention_mask" -> encoding?.attentionMask
                "token_type_ids" -> encoding?.tokenTypeIds
                else -> null
            }
            val values: Any = fromText ?: row(spec.name, i, perRow)
            InputTensor(spec.name, shape, convert(values, spec.dtype, spec.name))
        }
    }

    private fun row(name: String, i: Int, perRow: Int): Any {
        val array = golden[name] ?: throw BundleError("golden.npz has no input '$name'")
        if (array.size / rows != perRow) throw BundleError("golden '$name' has ${array.size / rows} values per row, the manifest says $perRow")
        return when (val d = array.data) {
            is FloatArray -> d.copyOfRange(i * perRow, (i + 1) * perRow)
            is DoubleArray -> d.copyOfRange(i * perRow, (i + 1) * perRow)
            else -> array.longs().copyOfRange(i * perRow, (i + 1) * perRow)
        }
    }

    // int8/uint8 inputs (LiteRT int8 I/O) stay float here: the runner quantizes them with the
    // scale and zero point the model file gives that tensor.
    private fun convert(values: Any, dtype: String, name: String): Any = when (dtype) {
        "float32", "int8", "uint8" -> when (values) {
            is FloatArray -> values
            is DoubleArray -> FloatArray(values.size) { values[it].toFloat() }
            is LongArray -> FloatArray(values.size) { values[it].toFloat() }
            else -> throw BundleError("input $name: cannot make float32")
        }
        "int64" -> (values as? LongArray) ?: throw BundleError("input $name: golden values are not integers")
        "int32" -> (values as? LongArray)?.let { v -> IntArray(v.size) { v[it].toInt() } }
            ?: throw BundleError("input $name: golden values are not integers")
        else -> throw BundleError("input $name: dtype $dtype is not supported by the example runners")
    }

    /** Load, warm up, time [runs] calls, then run every golden row once; times in milliseconds. */
    fun measure(runner: BundleRunner, warmup: Int, runs: Int): GoldenResult {
        val t0 = System.nanoTime()
        runner.load()
        val loadMs = (System.nanoTime() - t0) / 1e6
        val first = inputs(0)
        val t1 = System.nanoTime()
        runner.run(first)
        val firstMs = (System.nanoTime() - t1) / 1e6
        repeat(warmup) { runner.run(first) }
        val latency = DoubleArray(runs) {
            val t = System.nanoTime()
            runner.run(first)
            (System.nanoTime() - t) / 1e6
        }
        val logits = Array(rows) { i -> runner.run(inputs(i)) }
        return GoldenResult(logits, manifest.numClasses, runner.runtime, loadMs, firstMs, warmup, latency)
    }
}
