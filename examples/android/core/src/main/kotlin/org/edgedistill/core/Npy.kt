package org.edgedistill.core

import java.io.ByteArrayOutputStream
import java.io.File
import java.nio.ByteBuffer
import java.nio.ByteOrder
import java.util.zip.ZipEntry
import java.util.zip.ZipFile
import java.util.zip.ZipOutputStream

/**
 * One NumPy array: [descr] is NumPy's dtype string ('<f4', '<i8', '<U12', ...), [data] one of
 * FloatArray, DoubleArray, LongArray, IntArray, ByteArray (int8/uint8/bool) or Array<String>.
 */
class NpyArray(val descr: String, val shape: LongArray, val data: Any) {
    val size: Int get() = shape.fold(1L) { a, b -> a * b }.toInt()

    /** The values as float32 (numbers only). */
    fun floats(): FloatArray = when (data) {
        is FloatArray -> data
        is DoubleArray -> FloatArray(data.size) { data[it].toFloat() }
        is LongArray -> FloatArray(data.size) { data[it].toFloat() }
        is IntArray -> FloatArray(data.size) { data[it].toFloat() }
        is ByteArray -> FloatArray(data.size) { if (descr == "|u1") (data[it].toInt() and 0xff).toFloat() else data[it].toFloat() }
        else -> throw BundleError("array of $descr is not numeric")
    }

    /** The values as int64 (integers only: token ids, masks, labels). */
    fun longs(): LongArray = when (data) {
        is LongArray -> data
        is IntArray -> LongArray(data.size) { data[it].toLong() }
        is ByteArray -> LongArray(data.size) { if (descr == "|u1") (data[it].toInt() and 0xff).toLong() else data[it].toLong() }
        else -> throw BundleError("array of $descr is not an integer array")
    }

    @Suppress("UNCHECKED_CAST")
    fun strings(): Array<String> = data as? Array<String> ?: throw BundleError("array of $descr is not a string array")

    companion object {
        fun of(values: FloatArray, vararg shape: Long) = NpyArray("<f4", shape, values)
        fun of(values: DoubleArray, vararg shape: Long) = NpyArray("<f8", shape, values)
        fun of(values: LongArray, vararg shape: Long) = NpyArray("<i8", shape, values)
        /** A 0-d string array, as np.array("pixel-8") is. */
        fun scalar(text: String): NpyArray {
            val width = text.codePointCount(0, text.length).coerceAtLeast(1)
            return NpyArray("<U$width", LongArray(0), arrayOf(text))
        }
        fun scalar(value: Double) = NpyArray("<f8", LongArray(0), doubleArrayOf(value))
        fun scalar(value: Long) = NpyArray("<i8", LongArray(0), longArrayOf(value))
    }
}

/** Reads and writes .npy (format 1.0–3.0, little-endian, C order) and .npz (a zip of .npy). */
object Npy {
    private val MAGIC = byteArrayOf(0x93.toByte(), 0x4E, 0x55, 0x4D, 0x50, 0x59)  // \x93NUMPY
    private val DESCR = Regex("'descr':\\s*'([^']+)'")
    private val ORDER = Regex("'fortran_order':\\s*(True|False)")
    private val SHAPE = Regex("'shape':\\s*\\(([^)]*)\\)")

    /** Parse one .npy file's bytes. */
    fun read(bytes: ByteArray, name: String = "array"): NpyArray {
        if (bytes.size < 10 || !bytes.copyOfRange(0, 6).contentEquals(MAGIC)) throw BundleError("$name is not a .npy array")
        val buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN)
        val major = bytes[6].toInt()
        val headerLen = if (major == 1) (buf.getShort(8).toInt() and 0xffff) else buf.getInt(8)
        val start = if (major == 1) 10 else 12
        val header = String(bytes, start, headerLen, if (major == 3) Charsets.UTF_8 else Charsets.ISO_8859_1)
        val descr = DESCR.find(header)?.groupValues?.get(1) ?: throw BundleError("$name: no dtype in the .npy header")
        if (ORDER.find(header)?.groupValues?.get(1) == "True") throw BundleError("$name: Fortran-ordered arrays are not supported")
        val dims = SHAPE.find(header)?.groupValues?.get(1) ?: throw BundleError("$name: no shape in the .npy header")
        val shape = dims.split(",").map { it.trim() }.filter { it.isNotEmpty() }.map { it.toLong() }.toLongArray()
        val count = shape.fold(1L) { a, b -> a * b }.toInt()
        buf.position(start + headerLen)
        val data: Any = when {
            descr == "<f4" -> FloatArray(count).also { buf.asFloatBuffer().get(it) }
            descr == "<f8" -> DoubleArray(count).also { buf.asDoubleBuffer().get(it) }
            descr == "<i8" -> LongArray(count).also { buf.asLongBuffer().get(it) }
            descr == "<i4" -> IntArray(count).also { buf.asIntBuffer().get(it) }
            descr == "|i1" || descr == "|u1" || descr == "|b1" -> ByteArray(count).also { buf.get(it) }
            descr.startsWith("<U") -> readUnicode(buf, count, descr.substring(2).toInt())
            else -> throw BundleError("$name: dtype $descr is not supported (little-endian f4, f8, i8, i4, i1, u1, b1, U)")
        }
        return NpyArray(descr, shape, data)
    }

    private fun readUnicode(buf: ByteBuffer, count: Int, width: Int): Array<String> = Array(count) {
        val b = StringBuilder()
        for (k in 0 until width) {
            val cp = buf.getInt()
            if (cp != 0) b.appendCodePoint(cp)  // NumPy pads with NUL code points
        }
        b.toString()
    }

    /** One array as .npy 1.0 bytes (header padded to 64 bytes, as NumPy writes it). */
    fun write(array: NpyArray): ByteArray {
        val dims = array.shape.joinToString(", ") + if (array.shape.size == 1) "," else ""
        var header = "{'descr': '${array.descr}', 'fortran_order': False, 'shape': ($dims), }"
        val pad = 64 - (10 + header.length + 1) % 64
        header += " ".repeat(if (pad == 64) 0 else pad) + "\n"
        val body = ByteBuffer.allocate(bodySize(array)).order(ByteOrder.LITTLE_ENDIAN)
        when (val d = array.data) {
            is FloatArray -> d.forEach { body.putFloat(it) }
            is DoubleArray -> d.forEach { body.putDouble(it) }
            is LongArray -> d.forEach { body.putLong(it) }
            is IntArray -> d.forEach { body.putInt(it) }
            is ByteArray -> body.put(d)
            else -> {
                val width = array.descr.substring(2).toInt()
                for (s in array.strings()) {
                    var written = 0
                    var k = 0
                    while (k < s.length && written < width) {
                        val cp = s.codePointAt(k)
                        body.putInt(cp)
                        k += Character.charCount(cp)
                        written++
                    }
                    repeat(width - written) { body.putInt(0) }
                }
            }
        }
        val out = ByteArrayOutputStream()
        out.write(MAGIC)
        out.write(byteArrayOf(1, 0, (header.length and 0xff).toByte(), (header.length shr 8).toByte()))
        out.write(header.toByteArray(Charsets.ISO_8859_1))
        out.write(body.array())
        return out.toByteArray()
    }

    private fun bodySize(a: NpyArray): Int = when (a.data) {
        is FloatArray, is IntArray -> 4 * a.size
        is DoubleArray, is LongArray -> 8 * a.size
        is ByteArray -> a.size
        else -> 4 * a.size * a.descr.substring(2).toInt()
    }

    /** Every array of an .npz file, by name (without the .npy suffix), in file order. */
    fun readNpz(file: File): Map<String, NpyArray> {
        if (!file.isFile) throw BundleError("$file not found")
        val out = LinkedHashMap<String, NpyArray>()
        ZipFile(file).use { zip ->
            for (entry in zip.entries()) {
                val name = entry.name.removeSuffix(".npy")
                out[name] = read(zip.getInputStream(entry).use { it.readBytes() }, "$file:$name")
            }
        }
        return out
    }

    /** Write an .npz: to a temporary file beside [file], then renamed, so a reader never sees half of it. */
    fun writeNpz(file: File, arrays: Map<String, NpyArray>) {
        file.absoluteFile.parentFile?.mkdirs()
        val tmp = File(file.absoluteFile.parentFile, ".${file.name}.partial")
        ZipOutputStream(tmp.outputStream()).use { zip ->
            for ((name, array) in arrays) {
                zip.putNextEntry(ZipEntry("$name.npy"))
                zip.write(write(array))
                zip.closeEntry()
            }
        }
        if (!tmp.renameTo(file)) {
            tmp.delete()
            throw BundleError("cannot write $file")
        }
    }
}
