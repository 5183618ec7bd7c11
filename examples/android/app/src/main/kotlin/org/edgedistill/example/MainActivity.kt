package org.edgedistill.example

import android.app.Activity
import android.os.Bundle
import android.widget.TextView
import org.edgedistill.core.GoldenRun
import org.edgedistill.core.Manifest
import org.edgedistill.core.Predictions
import java.io.File

/**
 * The shortest path from a bundle to a prediction: load the bundle pushed to [DEFAULT_BUNDLE]
 * (or the `bundle` intent extra), run one input — the `text` extra for a text bundle, else golden
 * row 0 — and show the top label.
 *
 *   adb shell am start -n org.edgedistill.example/.MainActivity --es bundle /data/local/tmp/edgedistill/my-bundle --es text "great movie"
 */
class MainActivity : Activity() {
    companion object {
        const val DEFAULT_BUNDLE = "/data/local/tmp/edgedistill/bundle"
    }

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        val view = TextView(this).apply { textSize = 20f; setPadding(32, 32, 32, 32); text = "loading…" }
        setContentView(view)
        val bundle = File(intent.getStringExtra("bundle") ?: DEFAULT_BUNDLE)
        val text = intent.getStringExtra("text")
        Thread {
            val shown = try {
                val manifest = Manifest.read(bundle)
                val golden = GoldenRun(bundle, manifest)
                val inputs = if (text != null) golden.inputsForText(text) else golden.inputs(0)
                val logits = BundleRunners.open(bundle, manifest, threads = 0).use { it.load(); it.run(inputs) }
                val (label, p) = Predictions.top(logits, manifest.labels)
                "${bundle.name}\n${text ?: "golden input 0"}\n→ $label (${"%.1f".format(p * 100)} %)"
            } catch (e: Exception) {
                "error: ${e.message}"
            }
            runOnUiThread { view.text = shown }
        }.start()
    }
}
