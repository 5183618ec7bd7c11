package org.edgedistill.core

import java.io.File

/** One model input or output as manifest.json describes it; a "batch" first dimension is dynamic. */
class TensorSpec(val name: String, val shape: List<Any>, val dtype: String) {
    /** The shape for one sample: the batch dimension (named or numbered) becomes 1. */
    fun sampleShape(): LongArray = LongArray(shape.size) { i ->
        val d = shape[i]
        if (i == 0) 1L else (d as? Number)?.toLong() ?: throw BundleError("input $name: dimension $i is '$d', not a number")
    }
}

/** The WordPiece settings of a text bundle (manifest.preprocessing with kind "wordpiece"). */
class WordPieceSettings(
    val vocabFile: String, val doLowerCase: Boolean, val stripAccents: Boolean?, val tokenizeChineseChars: Boolean,
    val maxLength: Int, val padding: String, val truncation: Boolean,
    val clsToken: String, val sepToken: String, val padToken: String, val unkToken: String
)

/**
 * The fields of manifest.json the example apps read. Every key is read through [required] or
 * [optional] (the contract test greps those calls and checks each key against manifest.schema.json).
 */
class Manifest(
    val format: String, val quantization: String, val modelFile: String, val sha256: String,
    val inputs: List<TensorSpec>, val outputs: List<TensorSpec>, val numClasses: Int, val labels: List<String>?,
    val preprocessingKind: String?, val wordPiece: WordPieceSettings?, val goldenCount: Int
) {
    /** The model file inside [bundle]. */
    fun modelPath(bundle: File): File = inside(bundle, modelFile)

    companion object {
        /**
         * A bundle-relative path from the manifest, refused when it leaves the bundle (an absolute
         * path, or `..`): a hostile manifest must not make the app read other files.
         */
        fun inside(bundle: File, relative: String): File {
            val root = bundle.canonicalFile
            val file = File(root, relative).canonicalFile
            if (File(relative).isAbsolute || !file.path.startsWith(root.path + File.separator)) {
                throw BundleError("manifest path '$relative' points outside the bundle")
            }
            return file
        }

        /** Read `bundle/manifest.json`. */
        fun read(bundle: File): Manifest {
            val file = File(bundle, "manifest.json")
            if (!file.isFile) throw BundleError("bundle $bundle has no manifest.json")
            return parse(file.readText(Charsets.UTF_8))
        }

        /** Parse manifest text; a missing or mistyped field is a [BundleError] naming it. */
        @Suppress("UNCHECKED_CAST")
        fun parse(text: String): Manifest {
            val m = Json.parse(text) as? Map<String, Any?> ?: throw BundleError("manifest.json is not an object")
            val pre = m.optional("preprocessing") as? Map<String, Any?> ?: emptyMap()
            val golden = m.optional("golden") as? Map<String, Any?> ?: emptyMap()
            val kind = pre.optional("kind") as? String
            return Manifest(
                format = m.required("format") as String,
                quantization = m.required("quantization") as String,
                modelFile = m.required("model_file") as String,
                sha256 = m.required("sha256") as String,
                inputs = tensors(m.required("inputs")),
                outputs = tensors(m.required("outputs")),
                numClasses = (m.required("num_classes") as Number).toInt(),
                labels = (m.optional("labels") as? List<Any?>)?.map { it.toString() },
                preprocessingKind = kind,
                wordPiece = if (kind == "wordpiece") wordPiece(pre) else null,
                goldenCount = (golden.optional("count") as? Number)?.toInt() ?: -1
            )
        }

        @Suppress("UNCHECKED_CAST")
        private fun tensors(value: Any?): List<TensorSpec> = (value as? List<Any?> ?: throw BundleError("inputs/outputs must be lists"))
            .map { item ->
                val t = item as? Map<String, Any?> ?: throw BundleError("a tensor entry is not an object")
                val shape = (t.required("shape") as List<Any?>).map<Any?, Any> { d -> if (d is Double) d.toLong() else d.toString() }
                TensorSpec(t.required("name") as String, shape, t.required("dtype") as String)
            }

        private fun wordPiece(p: Map<String, Any?>) = WordPieceSettings(
            vocabFile = p.required("vocab_file") as String,
            doLowerCase = p.required("do_lower_case") as Boolean,
            stripAccents = p.optional("strip_accents") as Boolean?,
            tokenizeChineseChars = p.optional("tokenize_chinese_chars") as? Boolean ?: true,
            maxLength = (p.required("max_length") as Number).toInt(),
            padding = p.optional("padding") as? String ?: "max_length",
            truncation = p.optional("truncation") as? Boolean ?: true,
            clsToken = p.optional("cls_token") as? String ?: "[CLS]",
            sepToken = p.optional("sep_token") as? String ?: "[SEP]",
            padToken = p.optional("pad_token") as? String ?: "[PAD]",
            unkToken = p.optional("unk_token") as? String ?: "[UNK]"
        )

        private fun Map<String, Any?>.required(key: String): Any =
            this[key] ?: throw BundleError("manifest.json has no '$key'")

        private fun Map<String, Any?>.optional(key: String): Any? = this[key]
    }
}
