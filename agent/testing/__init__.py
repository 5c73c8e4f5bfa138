"""Test aids shipped beside the package: a register-level I2C emulation of the supported chips.

    i2c_emulation.py   EmulatedBus (stands where smbus2.SMBus would, fault injection) and the
                       RegisterDevice base of the chip models
    feeds.py           the physical world the emulated chips measure: a real recording, a constant
    mpu6050_model.py   MPU-6050 / MPU-6500 / MPU-9250
    lsm6dsox_model.py  LSM6DSOX
    ina219_model.py    INA219 and INA260

Nothing on the production path (``har-agent run``, ``record``, ``sensors probe``) imports this
package; tests check that.
"""
