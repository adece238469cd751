"""Geometric verification: local keypoints of the gallery photos and the query, matched and
checked for one consistent homography."""
