"""Run bundles on real devices: Android phones over adb, Linux edge boards over OpenSSH.

``bench.py`` drives one session: preflight (device facts, big cores, thermal status), push the model,
the device-built runner and the golden inputs, cool down, run warm-ups and timed runs in separate
processes pinned to chosen cores, pull outputs and timings, clean up, and validate the pulled outputs
against the bundle's golden teacher probabilities. ``adb.py`` and ``ssh.py`` are the two transports;
``runners/`` holds one small module per on-device runner (argv builder + output parser).
"""
