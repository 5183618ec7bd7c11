plugins {
    alias(libs.plugins.android.application)
    alias(libs.plugins.kotlin.android)
}

android {
    namespace = "org.edgedistill.example"
    compileSdk = 35

    defaultConfig {
        applicationId = "org.edgedistill.example"
        minSdk = 26
        targetSdk = 35
        versionCode = 1
        versionName = "1.0"
        testInstrumentationRunner = "androidx.test.runner.AndroidJUnitRunner"
        ndk {
            abiFilters += listOf("arm64-v8a", "x86_64")  // what the ExecuTorch AAR ships
        }
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions {
        jvmTarget = "17"
    }
    // the model files are pushed next to the app (adb), never compressed into the APK
    androidResources {
        noCompress += listOf("pte", "tflite")
    }
}

dependencies {
    implementation(project(":core"))
    implementation(libs.executorch.android)
    implementation(libs.litert)
    androidTestImplementation(libs.androidx.test.runner)
    androidTestImplementation(libs.androidx.test.ext.junit)
    androidTestImplementation(libs.junit)
}
