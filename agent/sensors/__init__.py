"""Live I2C sensors: drivers over smbus2, fault tracking and the :class:`SensorSource`.

    bus.py        the I2CBus protocol (the smbus2 methods the drivers use); opens /dev/i2c-N lazily
    axes.py       the profile's axis remap (pure)
    convert.py    raw int16 -> g and rad/s, the remap applied to samples (pure)
    imu.py        what every IMU driver offers: settings, identity, FIFO batches
    mpu6050.py    InvenSense MPU-6050 / MPU-6500 / MPU-9250
    lsm6dsox.py   ST LSM6DSOX (and the register-compatible LSM6DSO, LSM6DSO32)
    lsm6dsox_fifo.py  its tagged FIFO words paired into samples (pure)
    ina219.py     TI INA219 and INA260 power monitors
    probe.py      which supported chips answer on a bus
    timebase.py   sample times from the sample count, disciplined to the host clock (pure)
    health.py     faults, the degraded state and its MQTT payload (pure)
    source.py     SensorSource: the Source protocol over an IMU driver, with retries and gaps
    record.py     ``har-agent record``: a live session into the recording format

Nothing here imports ``smbus2`` at module level; :func:`agent.sensors.bus.open_smbus` does, when a
real bus is opened. The register-level emulation used by the tests lives in :mod:`agent.testing`
and is never imported from here.
"""
