package org.edgedistill.example

import android.os.Build
import android.os.Bundle
import android.util.Log
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import org.edgedistill.core.BundleError
import org.edgedistill.core.DeviceOutputs
import org.edgedistill.core.GoldenRun
import org.edgedistill.core.Manifest
import org.edgedistill.core.TimingStats
import org.junit.Assert.assertEquals
import org.junit.Test
import org.junit.runner.RunWith
import java.io.File

/**
 * Runs a pushed bundle's golden inputs on the phone and writes outputs.npz (docs/device-outputs.md)
 * for `edgedistill validate --device-outputs` / `edgedistill bench --app`:
 *
 *   adb shell am instrument -w -r -e bundle /data/local/tmp/edgedistill/my-bundle -e warmup 5 -e runs 20 \
 *       -e class org.edgedistill.example.BundleInstrumentationTest \
 *       org.edgedistill.example.test/androidx.test.runner.AndroidJUnitRunner
 *
 * The outputs path comes back as the status line `edgedistill_outputs=…` (the app's external files
 * folder, which adb can pull); a bundle error as `edgedistill_error=…`.
 */
@RunWith(AndroidJUnit4::class)
class BundleInstrumentationTest {
    private val instrumentation = InstrumentationRegistry.getInstrumentation()

    @Test
    fun runGoldenInputs() {
        val args = InstrumentationRegistry.getArguments()
        val bundle = File(args.getString("bundle") ?: MainActivity.DEFAULT_BUNDLE)
        val warmup = args.getString("warmup")?.toInt() ?: 5
        val runs = args.getString("runs")?.toInt() ?: 20
        val threads = args.getString("threads")?.toInt() ?: 0
        try {
            val manifest = Manifest.read(bundle)
            val golden = GoldenRun(bundle, manifest)
            if (manifest.goldenCount >= 0) assertEquals("golden rows vs manifest golden.count", manifest.goldenCount, golden.rows)
            val result = BundleRunners.open(bundle, manifest, threads).use { golden.measure(it, warmup, runs) }
            val folder = File(instrumentation.targetContext.getExternalFilesDir(null), "edgedistill")
            val outputs = File(folder, "${bundle.name}-outputs.npz")
            DeviceOutputs.write(outputs, result, manifest.sha256, "${Build.MANUFACTURER} ${Build.MODEL}")
            Log.i("edgedistill", "${bundle.name} (${result.runtime}): ${TimingStats(result.latencyMs).summary()}")
            status("edgedistill_outputs", outputs.absolutePath)
        } catch (e: BundleError) {
            status("edgedistill_error", "bundle ${bundle.name}: ${e.message}")
            throw e
        }
    }

    private fun status(key: String, value: String) {
        instrumentation.sendStatus(2, Bundle().apply { putString(key, value) })
    }
}
