package org.edgedistill.core

import java.io.File

/**
 * Command-line entry points the Python contract tests call (tests/test_examples_kotlin.py):
 *
 *   tokenize VOCAB SETTINGS_JSON TEXTS_JSONL   -> one line of space-separated ids per text
 *   golden BUNDLE LOGITS_NPY OUT_NPZ INPUTS_NPZ WARMUP RUNS
 *       runs GoldenRun with a replay runner (the logits of row i for the inputs of row i) and
 *       writes outputs.npz with the real writer, plus the inputs it built (INPUTS_NPZ).
 */
object ContractCli {
    @JvmStatic fun main(args: Array<String>) {
        when (args[0]) {
            "tokenize" -> tokenize(args)
            "golden" -> golden(args)
            else -> throw IllegalArgumentException(args[0])
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun tokenize(args: Array<String>) {
        val pre = Json.parse(File(args[2]).readText()) as Map<String, Any?>
        val settings = Manifest.parse("""{"format": "x", "quantization": "x", "model_file": "x", "sha256": "x",
            "inputs": [], "outputs": [], "num_classes": 1, "preprocessing": ${File(args[2]).readText()}}""").wordPiece!!
        check(pre["kind"] == "wordpiece")
        val t = WordPieceTokenizer(WordPieceTokenizer.readVocab(File(args[1]).readText(Charsets.UTF_8)), settings)
        val out = StringBuilder()
        for (line in File(args[3]).readLines(Charsets.UTF_8)) {
            if (line.isBlank()) continue
            out.append(t.encode(Json.parse(line) as String).inputIds.joinToString(" ")).append('\n')
        }
        print(out)
    }

    private class ReplayRunner(val table: Map<String, FloatArray>) : BundleRunner {
        override val runtime = "replay"
        override fun load() {}
        override fun run(inputs: List<InputTensor>): FloatArray =
            table[key(inputs)] ?: throw IllegalStateException("inputs not among the golden rows")
        override fun close() {}
    }

    private fun key(inputs: List<InputTensor>): String = inputs.joinToString("|") { t ->
        when (val d = t.data) {
            is FloatArray -> d.joinToString(",")
            is LongArray -> d.joinToString(",")
            is IntArray -> d.joinToString(",")
            else -> "?"
        }
    }

    private fun golden(args: Array<String>) {
        val bundle = File(args[1])
        val manifest = Manifest.read(bundle)
        val run = GoldenRun(bundle, manifest)
        val logits = Npy.read(File(args[2]).readBytes()).floats()
        val c = manifest.numClasses
        val table = HashMap<String, FloatArray>()
        for (i in 0 until run.rows) table[key(run.inputs(i))] = logits.copyOfRange(i * c, (i + 1) * c)
        val result = run.measure(ReplayRunner(table), args[5].toInt(), args[6].toInt())
        DeviceOutputs.write(File(args[3]), result, manifest.sha256, "kotlin-jvm")
        val built = LinkedHashMap<String, NpyArray>()
        manifest.inputs.forEachIndexed { k, spec ->
            val rows = (0 until run.rows).map { run.inputs(it)[k].data }
            built[spec.name] = when (val first = rows[0]) {
                is FloatArray -> NpyArray.of(rows.flatMap { (it as FloatArray).toList() }.toFloatArray(), run.rows.toLong(), first.size.toLong())
                is LongArray -> NpyArray.of(rows.flatMap { (it as LongArray).toList() }.toLongArray(), run.rows.toLong(), first.size.toLong())
                else -> NpyArray.of(rows.flatMap { (it as IntArray).map { v -> v.toLong() } }.toLongArray(), run.rows.toLong(), (first as IntArray).size.toLong())
            }
        }
        Npy.writeNpz(File(args[4]), built)
        println("stats " + TimingStats(result.latencyMs).summary())
    }
}
