DROP TABLE file_counts;
