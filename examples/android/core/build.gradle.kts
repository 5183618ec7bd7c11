// Plain Kotlin, no Android imports: manifest, npz/npy, WordPiece, outputs writer, timing statistics.
// CI without an Android SDK compiles and tests these same files with kotlinc + JUnit 4
// (tests/test_examples_kotlin.py); with Gradle: ./gradlew :core:test
plugins {
    alias(libs.plugins.kotlin.jvm)
}

kotlin {
    jvmToolchain(17)
}

dependencies {
    testImplementation(libs.junit)
}
